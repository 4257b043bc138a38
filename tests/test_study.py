import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from granumamba.data import save_motion
from granumamba.motion import RELAXED_POSE, Motion
from granumamba.study import AttentionRule, PlanError, analyze, build_study, load_plan
from granumamba.study.build import _stimuli, form_orders

from .conftest import ROOT, need_espeak, probe_video, read_frames

BUNDLED = ROOT / "assets" / "granumamba-demo"
TEXTS = {"c1": "Hello there, my friend.", "c2": "The golden river opens slowly, again and again.", "c3": "Bright cities never sleep."}


def waving(frames: int) -> Motion:
    poses = np.tile(RELAXED_POSE, (frames, 1)).astype(np.float32)
    poses[:, 17 * 3 + 2] += 1.0 * np.sin(np.arange(frames) / 5)  # right shoulder waves
    return Motion(poses, np.tile([0.0, 1.295, 0.0], (frames, 1)), np.zeros((frames, 100)))


def write_plan(folder: Path, forms: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for clip in TEXTS:
        save_motion(folder / f"gt_{clip}.npz", waving(200))
    lines = [f"seed: 5\nforms: {forms}\nsize: 256\nlayout: single", "attention: {mismatched: 1, catch: 1}", "clips:"]
    lines += [f'  - {{id: {c}, text: "{t}"}}' for c, t in TEXTS.items()]
    lines += [
        "conditions:",
        f"  - {{name: granumamba, model: {BUNDLED}, gains: [1, 1, 1]}}",
        f"  - {{name: no_fine, model: {BUNDLED}, gains: [1, 1, 0]}}",
        "  - {name: ground_truth, npz: {" + ", ".join(f"{c}: gt_{c}.npz" for c in TEXTS) + "}}",
    ]
    path = folder / "study.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_orders_are_balanced_latin_squares_with_checks_between_blocks(tmp_path):
    plan = load_plan(write_plan(tmp_path, forms=3))
    stimuli = _stimuli(plan, np.random.default_rng(plan.seed))
    by_id = {s.stimulus_id: s for s in stimuli}
    orders = form_orders(plan, stimuli)
    assert len(orders) == 3 and all(sorted(o) == sorted(by_id) for o in orders)
    for order in orders:
        regular = [by_id[i] for i in order if by_id[i].kind == "stimulus"]
        positions = {}
        for block in range(3):
            for k, s in enumerate(regular[block * 3 : block * 3 + 3]):
                assert s.clip == regular[block * 3].clip  # a block is one clip
                positions.setdefault(s.condition, []).append(k)
        assert all(sorted(p) == [0, 1, 2] for p in positions.values())  # each condition once in each position
    assert orders[0] != orders[1]
    assert form_orders(plan, stimuli) == orders  # same seed, same orders


def test_a_condition_samples_at_the_models_own_temperature_unless_given(tmp_path):
    path = write_plan(tmp_path)
    path.write_text(path.read_text().replace("gains: [1, 1, 0]}", "gains: [1, 1, 0], temperature: 0.5}"))
    temperatures = {c.name: c.temperature for c in load_plan(path).conditions}
    # None reaches the pipeline, which then samples at the checkpoint's served temperature as the app and CLI do
    assert temperatures == {"granumamba": None, "no_fine": 0.5, "ground_truth": None}
    path.write_text(path.read_text().replace("temperature: 0.5", "temperature: 3"))
    with pytest.raises(PlanError, match="temperature"):
        load_plan(path)


def test_plan_errors_name_the_problem(tmp_path):
    path = write_plan(tmp_path)
    text = path.read_text()
    path.write_text(text.replace("gt_c2.npz", "missing.npz"))
    with pytest.raises(PlanError, match="no npz file for clip"):
        load_plan(path)
    path.write_text(text + "colour: blue\n")
    with pytest.raises(PlanError, match="unknown key 'colour'"):
        load_plan(path)


@pytest.mark.skipif(not (BUNDLED / "model.safetensors").is_file(), reason="the bundled demo checkpoint is not built")
def test_a_small_study_builds_resumes_and_its_answers_round_trip(tmp_path):
    need_espeak()
    plan = load_plan(write_plan(tmp_path / "plan"))
    out = tmp_path / "study"
    manifest = build_study(plan, out, workers=1, progress=False)
    key = {r["stimulus_id"]: r for r in csv.DictReader((out / "answer_key.csv").open())}
    assert len(key) == 3 * 3 + 2 == manifest["stimuli"]
    assert {(r["clip"], r["condition"]) for r in key.values() if r["kind"] == "stimulus"} == {
        (c, n) for c in TEXTS for n in ("granumamba", "no_fine", "ground_truth")
    }
    lengths = {}
    for sid, row in key.items():
        video = out / "videos" / f"{sid}.mp4"
        assert video.is_file() and row["condition"] not in sid
        info = probe_video(video)
        if row["kind"] != "mismatched":  # a mismatched check lasts as long as the shorter of its clips
            lengths.setdefault(row["audio_clip"], set()).add(round(info["seconds"], 2))
        frames = read_frames(video)
        moving = np.abs(np.diff(frames.astype(int), axis=0)).mean()
        assert (moving < 0.01) == (row["kind"] == "catch"), (row["kind"], moving)
    assert all(len(v) == 1 for v in lengths.values()) and len({next(iter(v)) for v in lengths.values()}) == 3  # each clip its own length

    # resumable: a deleted video is made again, the rest kept
    victim = out / "videos" / f"{next(iter(key))}.mp4"
    kept = out / "videos" / f"{list(key)[1]}.mp4"
    stamp = kept.stat().st_mtime_ns
    victim.unlink()
    build_study(plan, out, workers=1, progress=False)
    assert victim.is_file() and kept.stat().st_mtime_ns == stamp

    # the questionnaire page in a headless browser: answer, download, analyse
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or pytest.skip("no Chromium")
    answers = tmp_path / "answers"
    answers.mkdir()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        for participant, catch_rating in (("p1", 1), ("p2", 5)):
            page = browser.new_page(accept_downloads=True)
            page.goto((out / "forms" / "form_1" / "index.html").as_uri())
            page.fill("#participant", participant)
            for sid, row in key.items():
                for dim in ("naturalness", "synchrony", "appropriateness", "preference"):
                    rating = {"catch": catch_rating, "mismatched": 1}.get(row["kind"], 4 if row["condition"] == "ground_truth" else 3)
                    page.check(f'input[name="{sid}__{dim}"][value="{rating}"]')
            with page.expect_download() as download:
                page.click("#download")
            download.value.save_as(answers / f"{participant}.csv")
            page.close()
        browser.close()
    result = analyze(out / "answer_key.csv", answers, tmp_path / "report", reference="ground_truth")
    assert list(result["excluded"]) == ["p2"]
    rows = {(r["condition"], r["dimension"]): r for r in result["summary"]}
    assert rows[("ground_truth", "naturalness")]["mean"] == 4.0 and rows[("no_fine", "synchrony")]["mean"] == 3.0
    assert (tmp_path / "report" / "chart.png").stat().st_size > 1000


def write_answers(folder: Path, ratings: dict[str, dict[str, float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for participant, per_stimulus in ratings.items():
        with (folder / f"{participant}.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["participant", "form", "stimulus_id", "dimension", "rating"])
            for sid, value in per_stimulus.items():
                writer.writerow([participant, 1, sid, "naturalness", value])


def test_analysis_matches_values_computed_by_hand(tmp_path):
    key = tmp_path / "key.csv"
    key.write_text(
        "stimulus_id,kind,clip,condition,audio_clip,left,right,settings\n"
        "sA,stimulus,c1,A,c1,,,\nsB,stimulus,c1,B,c1,,,\nsC,catch,c1,catch,c1,,,\n"
    )
    a, b = [3, 4, 5, 4], [2, 4, 3, 3]
    ratings = {f"p{i}": {"sA": a[i], "sB": b[i], "sC": 1} for i in range(4)}
    ratings["p9"] = {"sA": 5, "sB": 5, "sC": 4}  # fails the catch trial
    write_answers(tmp_path / "answers", ratings)
    result = analyze(key, tmp_path / "answers", tmp_path / "report", reference="B", rule=AttentionRule(max_catch_rating=2))
    assert set(result["excluded"]) == {"p9"}
    row = {r["condition"]: r for r in result["summary"]}
    # A: mean 4, sd sqrt(2/3) = 0.8165, 95% CI half-width t(0.975, 3) = 3.1824 times sd / 2
    assert row["A"]["n"] == 4 and row["A"]["mean"] == pytest.approx(4.0)
    assert row["A"]["sd"] == pytest.approx(math.sqrt(2 / 3))
    assert row["A"]["ci_high"] - row["A"]["mean"] == pytest.approx(3.182446 * math.sqrt(2 / 3) / 2, rel=1e-5)
    # paired against B: differences 1, 0, 2, 1 -> mean 1, sd sqrt(2/3), t = 1 / (sd / 2) = 2.4495, p (df 3) = 0.0917
    assert row["A"]["t"] == pytest.approx(2.449490, rel=1e-5) and row["A"]["p_ttest"] == pytest.approx(0.0917, abs=5e-4)
    assert row["B"]["t"] == "" and row["B"]["mean"] == pytest.approx(3.0)
    text = (tmp_path / "report" / "summary.md").read_text()
    assert "4 participants kept, 1 excluded" in text and "p9" in text
    (tmp_path / "answers" / "junk.csv").write_text("a,b\n1,2\n")
    assert any("junk.csv" in p for p in analyze(key, tmp_path / "answers", tmp_path / "r2")["problems"])
