"""The user-study tool: build anonymised, balanced stimulus sets and analyse the ratings."""

from .analyze import AttentionRule, ResponseError, analyze
from .build import build_study, form_orders
from .plan import Plan, PlanError, load_plan

__all__ = ["AttentionRule", "Plan", "PlanError", "ResponseError", "analyze", "build_study", "form_orders", "load_plan"]
