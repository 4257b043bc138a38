"""Procedural co-speech gesture in SMPL-X joint space, built the way gesture studies describe it
(McNeill; Kendon): gesture units that leave a rest pose (preparation), make one or more strokes
whose apex falls on a stressed syllable, hold, and retract to rest when the speech pauses.

The hands are planned as wrist paths in the gesture space in front of the torso (centre and
periphery, waist to shoulders), stroke by stroke: beats, points, chops, sweeps, containers,
circles and open-palm offers, one- or two-handed (mirrored, parallel, asymmetric), each with a
handshape on all 15 finger joints of the hand and a palm orientation. Arms and legs are posed
from those paths by two-bone inverse kinematics on the project's rest skeleton, so a stroke
size is a distance and the feet stay exactly where they are planted. With `girdle`, the collar
takes a share of each arm's swing (a third: the scapulohumeral rhythm) and the elbow stays as
near its ready posture as the wrist allows, so the forearm does most of the gesturing, as in
captured motion. The torso leans and turns
with the arms, the head nods on stressed words, and the weight shifts (and the feet step; with
`walk`, the speaker walks a few steps to another place) at phrase boundaries. The speech drives
it: a louder word gives a larger, faster stroke, a pause a hold, a long pause a retraction,
silence a rest.

Every path is a Hermite spline whose velocity is zero only at a stroke's apex, a hold's ends
and a rest, so the hand's turning points are where the speech puts them: the corpus's beat
consistency measures timing, and the model can learn it.

Three components are saved apart for the granularity levels: `coarse`, the slow part (below
0.5 Hz) of the body's pose; `mid`, the rest of the body and the handshapes (the strokes); `fine`,
3 to 8 Hz finger and wrist motion. poses = base + coarse + mid + fine + jaw, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicHermiteSpline, PchipInterpolator
from scipy.ndimage import maximum_filter1d
from scipy.signal import butter, sosfiltfilt
from scipy.spatial.transform import Rotation

from granumamba import FPS
from granumamba.motion.parts import NUM_EXPRESSIONS
from granumamba.motion.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS, REST_OFFSETS
from granumamba.text.textgrid import Word

STANDING_HEIGHT = 1.295  # root translation height that puts the rest skeleton's feet on the floor
KNEE_AXIS = np.array([1.0, 0.0, 0.0])  # the knee's axis of flexion
STRAIGHTEST = 0.985  # of a chain's full reach: two_bone_ik never locks a limb straight
KNEE_SOFT = 0.012  # the pelvis this much lower than full leg extension: knees slightly bent, IK has slack
SLOW_HZ = 0.5  # the coarse component's cut-off
SWIVEL = 60.0  # degrees either side of the default elbow direction that arm_ik may turn the elbow
RHYTHM = 1 / 3  # the scapulohumeral rhythm: the girdle turns one degree for every two of the arm (Inman et al. 1944)


def _j(name: str) -> int:
    return JOINT_INDEX[name]


def _chain_position(joint: int, stop: int) -> np.ndarray:
    """Rest position of `joint` relative to its ancestor `stop`."""
    p = np.zeros(3)
    while joint != stop:
        p += REST_OFFSETS[joint]
        joint = PARENTS[joint]
    return p


CHEST = _chain_position(_j("spine3"), _j("pelvis"))  # chest joint relative to the pelvis, rest pose
SIDES = {"left": 1.0, "right": -1.0}  # +x is the body's left


@dataclass(frozen=True)
class GestureStyle:
    """How a synthetic speaker gestures."""

    amplitude: float  # stroke size
    stroke_gap: float  # seconds, the shortest time between two stroke apexes (tempo)
    left: float  # how much each hand is used (handedness)
    right: float
    lateral: float  # preferred gesture space: 1 centre-ish, larger towards the periphery
    height: float  # metres added to the preferred hand height
    two_handed: float  # share of gesture units made with both hands
    hold: float  # probability of holding after a stroke
    rest: str  # "sides", "clasped" or "hip"
    sway: float  # posture variation size
    fine: float  # finger motion size
    step: float  # probability of a step at a phrase boundary
    other_beats: float  # share of an asymmetric unit's strokes on which the other hand beats small


# ----- inverse kinematics ----------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal frame whose first column is along `primary` and second towards `secondary`."""
    e1 = _unit(primary)
    e2 = _unit(secondary - (secondary * e1).sum(-1, keepdims=True) * e1)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1)


def _chain_terms(upper: np.ndarray, lower: np.ndarray, bend_axis: np.ndarray) -> tuple[float, float, float, float]:
    """|upper + R(bend) lower|^2 = base + 2 (A + R cos(bend - delta)): base, A, R and delta, with
    R(bend) the rotation about the bend axis (Rodrigues)."""
    k = _unit(bend_axis)
    along = np.dot(lower, k) * k
    A, B, C = np.dot(upper, along), np.dot(upper, lower - along), np.dot(upper, np.cross(k, lower))
    return np.dot(upper, upper) + np.dot(lower, lower), A, np.hypot(B, C), np.arctan2(C, B)


def chain_reach(upper: np.ndarray, lower: np.ndarray, bend_axis: np.ndarray) -> float:
    """The furthest a two-bone chain's end gets from its root (over its bend angles)."""
    base, A, R, _ = _chain_terms(upper, lower, bend_axis)
    return float(np.sqrt(base + 2 * (A + R)))


def two_bone_ik(
    target: np.ndarray, upper: np.ndarray, lower: np.ndarray, pole: np.ndarray, bend_axis: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations (T, 3, 3) of a chain's root and middle joint that put its end at `target`.

    target (T, 3): the end's wanted position relative to the root joint, in the root's parent
    frame. upper, lower: rest offsets of the middle and end joints. pole (T, 3) or (3,): where
    the middle joint should point (elbows out and back, knees forward). bend_axis: the middle
    joint's axis of flexion in its own frame, signed so that a positive angle bends it.
    Targets out of reach are met in their direction, the chain straight.
    (A closed form: the law of cosines for the middle angle, then one frame alignment.)
    """
    # one bend angle gives each distance (_chain_terms)
    base, A, R, delta = _chain_terms(upper, lower, bend_axis)
    distance = np.clip(
        np.linalg.norm(target, axis=-1), np.sqrt(max(base + 2 * (A - R), 0.0)) + 1e-3, STRAIGHTEST * chain_reach(upper, lower, bend_axis)
    )  # never locked straight
    bend = delta + np.arccos(np.clip(((distance**2 - base) / 2 - A) / R, -1, 1))
    middle = Rotation.from_rotvec(bend[:, None] * _unit(bend_axis)[None]).as_matrix()
    chain = upper[None] + middle @ lower  # root-to-end with the root unrotated, (T, 3)
    have = _frame(chain, np.broadcast_to(upper, chain.shape))
    want = _frame(target, np.broadcast_to(pole, target.shape))
    return want @ np.swapaxes(have, -1, -2), middle


def girdle_turn(target: np.ndarray, side: str, share: float = RHYTHM) -> np.ndarray:
    """(T, 3) axis-angle of a collar joint: `share` of the swing that takes the hanging arm
    (straight down) to the direction from the shoulder to the wrist's `target` (chest frame).
    The shoulder girdle turns with the arm as it is raised or brought forward (at RHYTHM, the
    scapulohumeral rhythm, the shoulder joint turns two thirds of the way and the collar the rest)."""
    shoulder = REST_OFFSETS[_j(f"{side}_collar")] + REST_OFFSETS[_j(f"{side}_shoulder")]
    reach = _unit(target - shoulder)
    down = np.array([0.0, -1.0, 0.0])
    angle = np.arccos(np.clip(reach @ down, -1.0, 1.0))
    return share * angle[:, None] * _unit(np.cross(down, reach))


def _arm_pole(wrist: np.ndarray, side: str) -> np.ndarray:
    """Where the elbow points first: out, down and back, further out with higher hands."""
    return np.stack([SIDES[side] * (0.45 + 0.6 * np.clip(wrist[..., 1], 0, None)), -np.ones(len(wrist)), -0.35 * np.ones(len(wrist))], -1)


def _arm_bones(side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper arm and forearm rest offsets, and the elbow's axis of flexion."""
    return REST_OFFSETS[_j(f"{side}_elbow")], REST_OFFSETS[_j(f"{side}_wrist")], np.array([0.0, -SIDES[side], 0.0])


def ready_shoulder(side: str) -> np.ndarray:
    """(1, 3, 3) the shoulder's rotation in the arm's ready posture: upper arm hanging, forearm forward."""
    upper, lower, bend = _arm_bones(side)
    ready_at = np.array([[0.0, -np.linalg.norm(upper), np.linalg.norm(lower)]])
    return two_bone_ik(ready_at, upper, lower, np.array([SIDES[side] * 0.3, -1.0, -0.3]), bend)[0]


def arm_ik(target: np.ndarray, wrist: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Shoulder and elbow rotations (T, 3, 3) that put the wrist at `target` (collar frame).
    `wrist`: the wrist's pelvis-relative path the target came from.

    A wrist position leaves the elbow free on a circle about the shoulder-wrist axis. Of the
    elbow positions within SWIVEL of the default pole, each frame takes the one whose shoulder
    rotation is nearest the arm's ready posture (upper arm hanging, forearm forward): the
    minimum-displacement choice, so the forearm does what it can and the upper arm turns only
    as far as the hand needs. The chosen swivel is smoothed, so the elbow glides.
    """
    upper, lower, bend = _arm_bones(side)
    ready = ready_shoulder(side)
    pole, axis = _arm_pole(wrist, side), _unit(target)
    swivels = np.radians(np.arange(-SWIVEL, SWIVEL + 1, 10.0))
    costs = []
    for phi in swivels:
        turned = Rotation.from_rotvec(phi * axis).apply(pole)
        shoulder, _ = two_bone_ik(target, upper, lower, turned, bend)
        costs.append(Rotation.from_matrix(np.swapaxes(ready, -1, -2) @ shoulder).magnitude())
    phi = _smooth(swivels[np.argmin(costs, 0)], 2.0)
    return two_bone_ik(target, upper, lower, Rotation.from_rotvec(phi[:, None] * axis).apply(pole), bend)


def _rotvec(matrices: np.ndarray) -> np.ndarray:
    """(T, 3, 3) -> (T, 3) axis-angle, continuous over time (no jump between angle and 2 pi - angle)."""
    v = Rotation.from_matrix(matrices).as_rotvec()
    angle = np.linalg.norm(v, axis=-1)
    axis = _unit(v)
    for t in range(1, len(v)):
        flipped = axis[t] * (angle[t] - 2 * np.pi)
        if np.linalg.norm(flipped - v[t - 1]) < np.linalg.norm(v[t] - v[t - 1]):
            v[t] = flipped
    return v


# ----- hands: shapes and paths -----------------------------------------------------------------
_FINGER_ORDER = ("index", "middle", "pinky", "ring", "thumb")
# Curl (MCP, PIP, DIP) per finger in _FINGER_ORDER, radians, then the spread of the knuckles.
_HANDSHAPES = {
    "relaxed": ((0.25, 0.3, 0.2), (0.35, 0.4, 0.25), (0.5, 0.5, 0.3), (0.45, 0.45, 0.3), (0.2, 0.2, 0.2), 0.05),
    "open": ((0.0, 0.05, 0.0), (0.02, 0.05, 0.0), (0.05, 0.05, 0.0), (0.05, 0.05, 0.0), (0.0, 0.0, 0.0), 0.2),
    "point": ((0.0, 0.0, 0.0), (1.3, 1.5, 0.8), (1.4, 1.5, 0.8), (1.35, 1.5, 0.8), (0.5, 0.5, 0.4), 0.0),
    "fist": ((1.3, 1.6, 0.9), (1.35, 1.6, 0.9), (1.45, 1.6, 0.9), (1.4, 1.6, 0.9), (0.6, 0.6, 0.5), 0.0),
    "grip": ((0.7, 0.8, 0.4), (0.6, 0.7, 0.4), (0.8, 0.7, 0.4), (0.7, 0.7, 0.4), (0.5, 0.4, 0.3), 0.0),
}
_SPREAD = {"index": 1.0, "middle": 0.2, "ring": -0.5, "pinky": -1.0, "thumb": 0.0}
# Palm orientation as forearm twist (radians, for the left arm; mirrored for the right).
PALMS = {"down": 0.0, "side": -1.1, "up": -2.0}


def handshape(name: str, side: str) -> np.ndarray:
    """(15, 3) axis-angle of one hand's finger joints (SMPL-X order: index, middle, pinky, ring, thumb)."""
    *curls, spread = _HANDSHAPES[name]
    sign = SIDES[side]
    out = np.zeros((15, 3))
    for f, (finger, curl) in enumerate(zip(_FINGER_ORDER, curls)):
        for k in range(3):
            if finger == "thumb":  # the thumb curls across the palm and towards it
                out[3 * f + k] = (sign * 0.3 * curl[k], -sign * 0.5 * curl[k], -sign * 0.4 * curl[k])
            else:
                out[3 * f + k] = (0.0, sign * spread * _SPREAD[finger] * (k == 0), -sign * curl[k])
    return out


@dataclass
class Key:
    """One keyframe of a hand: time, wrist position (pelvis-relative, metres, neutral torso),
    whether the hand stops there (velocity 0) or passes through, handshape and palm."""

    t: float
    position: np.ndarray
    stop: bool = True
    shape: str = "relaxed"
    palm: str = "down"
    flick: float = 0.0  # wrist flexion at this key (radians): beats flick the hand down


def rest_position(style: GestureStyle, side: str) -> np.ndarray:
    s = SIDES[side]
    return {"sides": np.array([s * 0.2, 0.0, 0.08]), "clasped": np.array([s * 0.04, 0.03, 0.2]), "hip": np.array([s * 0.21, 0.07, 0.0])}[
        style.rest if not (style.rest == "hip" and side == "left") else "sides"  # one hand on the hip, the right
    ]


def _clamp(p: np.ndarray, side: str) -> np.ndarray:
    s = SIDES[side]
    x = s * np.clip(s * p[0], -0.06, 0.52)
    return np.array([x, np.clip(p[1], -0.12, 0.46), np.clip(p[2], 0.08, 0.46)])


def _home(style: GestureStyle, side: str, rng: np.random.Generator) -> np.ndarray:
    """A resting place of the hand inside the gesture space for one unit."""
    s = SIDES[side]
    return _clamp(
        np.array([s * style.lateral * rng.uniform(0.2, 0.38), style.height + rng.uniform(0.1, 0.3), rng.uniform(0.13, 0.26)]), side
    )


STROKES = ("beat", "beat", "beat", "chop", "sweep", "point", "offer", "circle", "container")


def _stroke_keys(
    kind: str, side: str, home: np.ndarray, size: float, t: float, before: float, up: bool, rng: np.random.Generator
) -> list[Key]:
    """Keys of one stroke whose apex, a stop, is at time t; `before` seconds are free before it.
    Only a circle passes through keys of its own on the way: any other turn of the hand would be
    a motion beat off the speech's onsets. Beats alternate between a low apex and a high one
    (`up`), so that a run of beats bounces on the syllables."""
    s = SIDES[side]
    lead = min(before, 0.45)
    if kind == "beat":
        drop = np.array([s * rng.uniform(-0.09, 0.09), 0.14 * size if up else -0.17 * size, (0.0 if up else 0.05) * size])
        return [
            Key(
                t,
                home + drop,
                True,
                "open" if up or size > 0.8 else "relaxed",
                "down" if rng.random() < 0.6 else "side",
                flick=0.0 if up else 0.6 * size,
            )
        ]
    if kind == "chop":
        return [Key(t, home + np.array([s * 0.02, -0.18 * size, 0.08 * size]), True, "open", "side", flick=0.2 * size)]
    if kind == "sweep":
        return [Key(t, home + np.array([s * 0.3 * size, -0.04, 0.04]), True, "open", "down")]
    if kind == "point":
        apex = np.array([s * rng.uniform(0.15, 0.42), rng.uniform(0.18, 0.36), rng.uniform(0.3, 0.45)])
        return [Key(t, apex, True, "point", "side")]
    if kind == "offer":
        return [Key(t, home + np.array([s * 0.1 * size, -0.05, 0.15 * size]), True, "open", "up")]
    if kind == "circle":
        r = 0.08 * size
        phase = rng.uniform(0, 2 * np.pi)
        points = [home + r * np.array([np.cos(phase + a), np.sin(phase + a), 0.3 * np.sin(phase + a)]) for a in (0.0, 2.1, 4.2)]
        times = [t - lead * f for f in (0.75, 0.5, 0.25)]
        return [Key(tt, p, False, "grip", "side") for tt, p in zip(times, points)] + [
            Key(t, home + r * np.array([np.cos(phase), np.sin(phase), 0]), True, "grip", "side")
        ]
    # container: the hands face each other, a shape held between them
    width = rng.uniform(0.1, 0.22) * (0.7 + 0.3 * size)
    return [Key(t, np.array([s * width, home[1] - 0.02, home[2] + 0.04]), True, "open", "side")]


def _clamped(key: Key, side: str) -> Key:
    return Key(key.t, _clamp(key.position, side), key.stop, key.shape, key.palm, key.flick)


def _mirror(key: Key) -> Key:
    return Key(key.t, key.position * np.array([-1.0, 1.0, 1.0]), key.stop, key.shape, key.palm, key.flick)


@dataclass
class Apex:
    t: float
    size: float  # 0.3 .. 2: louder, higher-pitched, stressed words give larger strokes
    stressed: bool


def plan_apexes(
    words: list[Word], onsets: np.ndarray, energy: np.ndarray, pitch: np.ndarray, style: GestureStyle, rng: np.random.Generator
) -> list[Apex]:
    """A stroke apex on the first acoustic onset of a word, at most one per `stroke_gap` (the
    speaker's tempo); its size from the word's loudness and pitch against the take's."""
    frames = energy.shape[0]
    voiced = pitch[pitch > 0]
    pitch_mid = np.median(voiced) if voiced.size else 1.0
    loud_mid = np.median(energy[energy > 0.05]) if (energy > 0.05).any() else 0.5
    apexes: list[Apex] = []
    for word in words:
        inside = onsets[(onsets >= word.start - 0.02) & (onsets < word.end)]
        if not inside.size or inside[0] * FPS >= frames - 1:
            continue
        if apexes and inside[0] - apexes[-1].t < style.stroke_gap * rng.uniform(0.85, 1.4):
            continue
        a, b = int(word.start * FPS), max(int(word.end * FPS), int(word.start * FPS) + 1)
        loud = energy[a:b].mean() / (loud_mid + 1e-6)
        high = (pitch[a:b][pitch[a:b] > 0].mean() / pitch_mid) if (pitch[a:b] > 0).any() else 1.0
        stress = loud * high**2
        size = float(np.clip(style.amplitude * (0.45 + 0.55 * stress) * rng.uniform(0.75, 1.25), 0.3, 2.0))
        apexes.append(Apex(float(inside[0]), size, stress > 1.15))
    return apexes


def plan_units(words: list[Word], apexes: list[Apex], merge_gap: float) -> list[list[Apex]]:
    """Gesture units: apexes of phrases whose pause between them is under `merge_gap` seconds."""
    units: list[list[Apex]] = []
    last_end = -np.inf
    ends = np.array([w.end for w in words])
    for apex in apexes:
        previous_word_end = ends[ends < apex.t].max(initial=-np.inf)
        if units and apex.t - units[-1][-1].t < 2.5 and previous_word_end - last_end < merge_gap:
            units[-1].append(apex)
        else:
            units.append([apex])
        # the end of the speech that follows this apex, up to the next pause
        later = [w for w in words if w.start >= apex.t - 0.05]
        last_end = apex.t
        for w0, w1 in zip(later, later[1:]):
            last_end = w0.end
            if w1.start - w0.end > merge_gap:
                break
        else:
            last_end = later[-1].end if later else apex.t
    return units


def plan_hands(
    words: list[Word], apexes: list[Apex], duration: float, style: GestureStyle, rng: np.random.Generator
) -> dict[str, list[Key]]:
    """Keys of both hands for a take: units of preparation, strokes, holds and retraction."""
    keys = {side: [Key(0.0, rest_position(style, side), True, "relaxed", "side")] for side in SIDES}
    units = plan_units(words, apexes, merge_gap=0.9)
    speech_end = np.array([w.end for w in words])
    for u, unit in enumerate(units):
        two = rng.random() < style.two_handed
        dominant = "left" if rng.random() < style.left / (style.left + style.right) else "right"
        active = list(SIDES) if two else [dominant]
        homes = {side: _home(style, side, rng) for side in SIDES}
        start = unit[0].t - rng.uniform(0.4, 0.65)  # preparation: leave rest
        for side in active:
            last = keys[side][-1]
            start_side = max(start, last.t + 0.15)
            keys[side].append(Key(start_side, last.position, True, last.shape, last.palm))
        mode = rng.choice(["mirrored", "parallel", "asymmetric"]) if two else "one"
        previous_t = start
        for k, apex in enumerate(unit):
            kind = STROKES[rng.integers(len(STROKES))]
            if kind == "container" and not two:
                kind = "offer"
            before = apex.t - previous_t
            lead_side = dominant if mode != "mirrored" else "left"
            stroke = [
                _clamped(key, lead_side)
                for key in _stroke_keys(kind, lead_side, homes[lead_side], apex.size, apex.t, before, k % 2 == 1, rng)
            ]
            per_side = {lead_side: stroke}
            if two:
                other = "right" if lead_side == "left" else "left"
                if mode == "mirrored" or kind == "container":
                    per_side[other] = [_mirror(key) for key in stroke]
                elif mode == "parallel":
                    shift = homes[other] - homes[lead_side]
                    per_side[other] = [Key(key.t, key.position + shift, key.stop, key.shape, key.palm, key.flick) for key in stroke]
                elif rng.random() < style.other_beats:  # asymmetric: the other hand beats small
                    per_side[other] = _stroke_keys("beat", other, homes[other], 0.5 * apex.size, apex.t, before, k % 2 == 1, rng)
                per_side = {side: [_clamped(key, side) for key in side_keys] for side, side_keys in per_side.items()}
            for side, new in per_side.items():
                last = keys[side][-1]
                new = [key for key in new if key.t > last.t + 0.08]
                if not new:
                    continue
                if last.stop and new[0].t - last.t > 0.75:  # a long gap: hold, then move
                    keys[side].append(
                        Key(new[0].t - rng.uniform(0.35, 0.6), last.position + rng.normal(0, 0.01, 3), True, last.shape, last.palm)
                    )
                keys[side].extend(new)
                if rng.random() < 0.5:  # the hand drifts in the gesture space
                    homes[side] = _clamp(homes[side] + rng.normal(0, 0.04, 3), side)
            previous_t = apex.t
            if k + 1 < len(unit) and rng.random() < style.hold:  # a hold after the stroke
                for side in per_side:
                    last = keys[side][-1]
                    hold_end = min(last.t + rng.uniform(0.25, 0.6), unit[k + 1].t - 0.3)
                    if hold_end > last.t + 0.2:
                        keys[side].append(Key(hold_end, last.position + rng.normal(0, 0.008, 3), True, last.shape, last.palm))
        # retraction when the speech pauses long after the unit, else a hold into the next unit
        end_of_speech = speech_end[speech_end >= unit[-1].t].min(initial=unit[-1].t)
        next_start = units[u + 1][0].t - 0.7 if u + 1 < len(units) else duration
        long_pause = next_start - end_of_speech > 1.5
        if long_pause or rng.random() < 0.08:
            # into a long silence the hands hold about a second first, as people do: a pause
            # never shows at its start whether it will be long, so a short one changes nothing
            wait = rng.uniform(0.8, 1.2) if long_pause else 0.0
            for side in SIDES:
                last = keys[side][-1]
                if np.allclose(last.position, rest_position(style, side)):
                    continue
                hold_end = max(last.t + rng.uniform(0.2, 0.5), end_of_speech + wait)
                arrive = hold_end + rng.uniform(0.6, 1.0)
                if arrive < min(next_start, duration - 0.1):
                    keys[side].append(Key(hold_end, last.position, True, last.shape, last.palm))
                    keys[side].append(Key(arrive, rest_position(style, side), True, "relaxed", "side"))
    return keys


def hand_path(keys: list[Key], t: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wrist positions (T, 3), finger rotations (T, 15, 3), forearm twist (T,) and wrist flexion
    (T,) over times t, from a hand's keys: a Hermite spline through the keys, at rest at stops."""
    keys = sorted(keys, key=lambda k: k.t)
    kept = [keys[0]]
    for key in keys[1:]:
        if key.t > kept[-1].t + 1e-3:
            kept.append(key)
    if kept[-1].t < t[-1]:
        kept.append(Key(float(t[-1]) + 0.01, kept[-1].position, True, kept[-1].shape, kept[-1].palm))
    times = np.array([k.t for k in kept])
    points = np.stack([k.position for k in kept])
    velocity = np.zeros_like(points)
    for i in range(1, len(kept) - 1):
        if not kept[i].stop:
            velocity[i] = (points[i + 1] - points[i - 1]) / (times[i + 1] - times[i - 1])
    position = CubicHermiteSpline(times, points, velocity)(t)
    # shapes, palms and flicks change between stops, reaching each stop's value at the stop
    stops = [k for k in kept if k.stop] or kept
    stop_t = np.array([k.t for k in stops])
    sign = SIDES[side]
    if len(stops) == 1:
        fingers = np.broadcast_to(handshape(stops[0].shape, side), (len(t), 15, 3)).copy()
        return position, fingers, np.full(len(t), sign * PALMS[stops[0].palm]), np.zeros(len(t))
    shapes = np.stack([handshape(k.shape, side) for k in stops])
    fingers = PchipInterpolator(stop_t, shapes, axis=0, extrapolate=True)(t)
    twist = PchipInterpolator(stop_t, np.array([sign * PALMS[k.palm] for k in stops]), extrapolate=True)(t)
    flick = PchipInterpolator(stop_t, np.array([k.flick for k in stops]), extrapolate=True)(t)
    return position, fingers, twist, flick


# ----- the body --------------------------------------------------------------------------------
def _smooth(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    sos = butter(2, cutoff_hz, btype="low", fs=FPS, output="sos")
    return sosfiltfilt(sos, x, axis=0) if x.shape[0] > 15 else x


def _bump(t: np.ndarray, centres: list[float], width: float) -> np.ndarray:
    out = np.zeros_like(t)
    for c in centres:
        out += np.exp(-0.5 * ((t - c) / width) ** 2)
    return out


def _phrase_targets(words: list[Word], t: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """(T, count) a new normal target per phrase (pause over 0.25 s), eased."""
    starts = [0.0] + [b.start for a, b in zip(words[:-1], words[1:]) if b.start - a.end > 0.25]
    knots = rng.normal(0.0, 1.0, (len(starts), count))
    idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
    return _smooth(knots[idx], 0.4)


def _walk(start: tuple[np.ndarray, np.ndarray], at: float, rng: np.random.Generator) -> list[tuple[float, float, int, np.ndarray]]:
    """A few steps to a new place from feet `start` (left, right ankle), the first lifting at
    `at` s: [(lift, land, foot, where)], feet alternating, each landing before the next lifts
    (one foot always carries the weight), the body facing forward, the place within a stage of
    0.9 x 1.4 m around the origin."""
    centre = (start[0] + start[1]) / 2
    goal = centre + np.array([rng.uniform(-0.4, 0.4), 0.0, rng.uniform(-0.6, 0.6)])
    goal[0], goal[2] = np.clip(goal[0], -0.45, 0.45), np.clip(goal[2], -0.7, 0.7)
    count = int(np.clip(np.ceil(np.linalg.norm((goal - centre)[[0, 2]]) / 0.28), 1, 4))  # steps of at most 0.28 m
    lead = 0 if goal[0] > centre[0] else 1  # the foot on the side it goes first
    feet, steps = [start[0].copy(), start[1].copy()], []
    for k in range(count + 1):  # the last step brings the trailing foot beside the other
        foot = (lead + k) % 2
        target = centre + (goal - centre) * min(1.0, (k + 1) / count)
        where = target + np.array([0.1 if foot == 0 else -0.1, 0.0, rng.normal(0, 0.02)])
        where[1] = feet[foot][1]
        lift = at + k * rng.uniform(0.5, 0.6)  # at least 0.4 s after the one before lifts, so after it lands
        steps.append((lift, lift + 0.38, foot, where))
        feet[foot] = where
    return steps


def _walk_travel(centre: np.ndarray, t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The body's path (T, 2) over a walk from `lo` to `hi` s: from where it stood to where it
    stops, speeding up over the first step, steady, slowing down over the last (a Tukey window
    of speed), instead of the feet's middle, which stands still whenever both feet are down. A
    walker's centre of mass vaults over the standing leg and carries on through the double
    support; it does not stop at each step. Unchanged outside the walk."""
    from scipy.signal.windows import tukey

    inside = np.flatnonzero((t >= lo) & (t <= hi))
    if inside.size < 3:
        return centre
    speed = tukey(inside.size, alpha=min(1.0, 2 * 0.45 * FPS / inside.size))
    share = np.concatenate([[0.0], np.cumsum(speed[1:] + speed[:-1])])
    share /= share[-1]
    out = centre.copy()
    out[inside] = centre[inside[0]] + share[:, None] * (centre[inside[-1]] - centre[inside[0]])
    return out


def _stance(
    words: list[Word], frames: int, style: GestureStyle, rng: np.random.Generator, walk: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feet (T, 2, 3) planted ankle positions (left, right; world), the pelvis position (T, 3)
    over them, and the weight's lateral share. A step moves one foot at a phrase boundary while
    the other carries the weight; a foot moves only when unloaded. `walk`: the share of phrase
    boundaries (scaled by the speaker's habit of stepping) at which the speaker walks a few steps
    to another place, as people who pace while they talk do (`_walk`)."""
    t = np.arange(frames) / FPS
    ankle_y = STANDING_HEIGHT + _chain_position(_j("left_ankle"), _j("pelvis"))[1] + REST_OFFSETS[0][1]
    feet_keys = {0: [(0.0, np.array([0.1, ankle_y, -0.035]))], 1: [(0.0, np.array([-0.1, ankle_y, -0.035]))]}
    feet = np.zeros((frames, 2, 3))
    boundaries = [b.start - 0.1 for a, b in zip(words[:-1], words[1:]) if b.start - a.end > 0.3]
    last_step = -10.0
    swing_spans, walks = [], []
    for b in boundaries:
        if walk > 0 and b - last_step > 1.5 and b + 3.0 < t[-1] and rng.random() < walk * style.step / 0.22:
            steps = _walk((feet_keys[0][-1][1], feet_keys[1][-1][1]), b, rng)
            for lift, land, foot, where in steps:
                feet_keys[foot].append((lift, feet_keys[foot][-1][1]))
                feet_keys[foot].append((land, where))
                swing_spans.append((lift - 0.3, lift + 0.6, foot))
                last_step = land
            walks.append((steps[0][0], steps[-1][1]))
            continue
        if b - last_step < 3.0 or rng.random() > style.step or b + 0.6 > t[-1]:
            continue
        foot = int(rng.integers(2))
        old = feet_keys[foot][-1][1]
        other = feet_keys[1 - foot][-1][1]
        new = old + np.array([rng.normal(0, 0.05), 0.0, rng.normal(0, 0.08)])
        new[0] = np.clip(new[0], other[0] + 0.14, other[0] + 0.3) if foot == 0 else np.clip(new[0], other[0] - 0.3, other[0] - 0.14)
        new[2] = np.clip(new[2], other[2] - 0.18, other[2] + 0.18)
        feet_keys[foot].append((b + 0.08, old))  # the heel lifts first, then the foot travels
        feet_keys[foot].append((b + 0.38, new))
        swing_spans.append((b - 0.3, b + 0.6, foot))
        last_step = b
    for foot in (0, 1):
        kt = np.array([k[0] for k in feet_keys[foot]] + [t[-1] + 1])
        kp = np.stack([k[1] for k in feet_keys[foot]] + [feet_keys[foot][-1][1]])
        keep = np.concatenate([[True], np.diff(kt) > 1e-6])
        feet[:, foot] = PchipInterpolator(kt[keep], kp[keep], axis=0)(t)
    for lo, hi, foot in swing_spans:  # lift the swinging foot, from b to b + 0.45 s
        inside = (t > lo + 0.3) & (t < hi - 0.15)
        feet[inside, foot, 1] += 0.04 * np.sin(np.pi * (t[inside] - lo - 0.3) / 0.45)
    # weight: slow shifts per phrase, and fully on the standing foot around a step
    weight = np.tanh(_phrase_targets(words, t, 1, rng)[:, 0] * 1.2) * 0.8 * min(style.sway, 1.2)
    for lo, hi, foot in swing_spans:
        inside = (t > lo) & (t < hi)
        weight[inside] = 1.0 if foot == 1 else -1.0
    weight = _smooth(weight, 1.2)
    centre = feet.mean(1)
    half = (feet[:, 0] - feet[:, 1]) / 2  # from the middle to the left foot
    walking = np.zeros(frames)
    for lo, hi in walks:  # the body travels on through each stride (_walk_travel)
        centre[:, [0, 2]] = _walk_travel(centre[:, [0, 2]], t, lo, hi)
        walking[(t >= lo) & (t <= hi)] = 1.0
    # while walking, the hips sway 2 to 3 cm each way over the standing foot, as a walker's do,
    # not over the width of the strides
    walking = _smooth(walking, 1.5).clip(0, 1)
    half[:, 0] = (1 - walking) * half[:, 0] + walking * np.sign(half[:, 0]) * 0.05
    pelvis = centre + half * (0.55 * weight)[:, None]
    pelvis[:, 1] = STANDING_HEIGHT - KNEE_SOFT - 0.012 * np.abs(weight)
    pelvis[:, 2] = centre[:, 2] + 0.01
    return feet, (_within_reach(pelvis, feet) if walk > 0 else pelvis), weight


def _within_reach(pelvis: np.ndarray, feet: np.ndarray) -> np.ndarray:
    """The pelvis lowered (knees bent) where a foot further out than usual (a walking stride)
    would be out of the leg's reach: two_bone_ik meets targets out of reach with the leg as
    straight as it goes, short of the target, and the planted foot would slide. Unchanged where
    both feet are in reach."""
    drop = np.zeros(len(pelvis))
    for f, side in enumerate(SIDES):
        reach = STRAIGHTEST * chain_reach(REST_OFFSETS[_j(f"{side}_knee")], REST_OFFSETS[_j(f"{side}_ankle")], KNEE_AXIS)
        leg = feet[:, f] - (REST_OFFSETS[0] + pelvis + REST_OFFSETS[_j(f"{side}_hip")])
        across = np.linalg.norm(leg[:, [0, 2]], axis=-1)
        drop = np.maximum(drop, -leg[:, 1] - np.sqrt(np.clip(reach**2 - across**2, 0.0, None)))
    if not (drop > 0).any():
        return pelvis
    # held over the stride (a maximum over 0.3 s each side), then eased, so the knees bend smoothly
    drop = _smooth(maximum_filter1d(drop.clip(0, None), 31), 2.0).clip(0, None)
    return pelvis - drop[:, None] * np.array([0.0, 1.0, 0.0])


def gesture(
    words: list[Word],
    energy: np.ndarray,
    pitch: np.ndarray,
    onsets: np.ndarray,
    style: GestureStyle,
    rng: np.random.Generator,
    walk: float = 0.0,
    girdle: float = 0.0,
) -> dict[str, np.ndarray]:
    """Procedural motion for one take, from its words, per-frame energy (0..1) and pitch (Hz,
    0 unvoiced), and onset times. Returns (T, 55, 3) axis-angle components coarse, mid, fine,
    jaw, the base pose (55, 3), trans (T, 3) and expressions (T, 100).

    `girdle` > 0: each collar takes that share of its arm's swing (girdle_turn; RHYTHM is the
    anatomical third) and the elbow hangs as near its ready posture as the wrist allows
    (arm_ik). 0: the collars only shrug a little with a raised hand and the default pole places
    the elbow."""
    frames = energy.shape[0]
    t = np.arange(frames) / FPS
    duration = frames / FPS
    apexes = plan_apexes(words, onsets, energy, pitch, style, rng)
    keys = plan_hands(words, apexes, duration, style, rng)
    pose = np.zeros((frames, NUM_JOINTS, 3))
    rot = {}  # local rotation matrices (T, 3, 3) of the body joints posed so far

    # torso and head: follow the hands slowly, nod on stressed words, turn per phrase
    paths = {side: hand_path(keys[side], t, side) for side in SIDES}
    hands = np.stack([paths[side][0] for side in SIDES], 1)  # (T, 2, 3)
    follow = _smooth(hands, 1.0)
    drift = _phrase_targets(words, t, 6, rng) * style.sway
    twist = 1.2 * (follow[:, 0, 2] - follow[:, 1, 2]) + 0.08 * drift[:, 0]  # left hand forward turns the chest right
    lean = 0.6 * (follow[:, :, 2].mean(1) - 0.15) + 0.06 * drift[:, 1]
    side_bend = 0.3 * (follow[:, 0, 1] - follow[:, 1, 1]) + 0.04 * drift[:, 2]
    torso = np.stack([lean, twist, side_bend], -1)
    nods = _bump(t, [a.t + 0.05 for a in apexes if a.stressed], 0.12)
    head = np.stack([0.05 * drift[:, 3] + 0.12 * nods - 0.05 * lean, 0.4 * twist + 0.08 * drift[:, 4], 0.05 * drift[:, 5]], -1)
    for name, share in (("spine1", 0.45), ("spine2", 0.3), ("spine3", 0.25)):
        pose[:, _j(name)] = torso * share
    pose[:, _j("neck")] = -0.25 * torso + 0.8 * head
    pose[:, _j("head")] = 0.5 * head
    for name in ("pelvis", "spine1", "spine2", "spine3", "neck", "head"):
        rot[name] = Rotation.from_rotvec(pose[:, _j(name)]).as_matrix()

    # arms: the shoulder girdle turns with the arm, then two-bone IK from the collar frame
    for side, s in SIDES.items():
        wrist, fingers, palm_twist, flick = paths[side]
        target = wrist - CHEST  # chest frame (the torso carries the gesture space)
        if girdle > 0:
            pose[:, _j(f"{side}_collar")] = girdle_turn(target, side, girdle)
        else:
            raise_ = np.clip(wrist[:, 1] - 0.2, 0, None)
            pose[:, _j(f"{side}_collar")] = np.stack([np.zeros(frames), np.zeros(frames), s * 0.35 * raise_], -1)
        collar = Rotation.from_rotvec(pose[:, _j(f"{side}_collar")]).as_matrix()
        shoulder_at = REST_OFFSETS[_j(f"{side}_collar")] + collar @ REST_OFFSETS[_j(f"{side}_shoulder")]
        local_target = np.einsum("tji,tj->ti", collar, target - shoulder_at)
        if girdle > 0:
            shoulder, elbow = arm_ik(local_target, wrist, side)
        else:
            upper, lower, bend = _arm_bones(side)
            shoulder, elbow = two_bone_ik(local_target, upper, lower, _arm_pole(wrist, side), bend)
        half = Rotation.from_rotvec(np.stack([0.5 * palm_twist, np.zeros(frames), np.zeros(frames)], -1)).as_matrix()
        pose[:, _j(f"{side}_shoulder")] = _rotvec(shoulder)
        pose[:, _j(f"{side}_elbow")] = _rotvec(elbow @ half)
        pose[:, _j(f"{side}_wrist")] = np.stack([0.5 * palm_twist, np.zeros(frames), -s * (flick + 0.1)], -1)
        first = 25 if side == "left" else 40
        pose[:, first : first + 15] = fingers

    # legs: the pelvis over the feet, each leg by IK so that a planted foot stays put
    feet, pelvis_at, weight = _stance(words, frames, style, rng, walk)
    pelvis_turn = np.stack([np.zeros(frames), 0.3 * twist + 0.04 * drift[:, 0], -0.04 * weight], -1)
    pose[:, _j("pelvis")] = pelvis_turn
    r_pelvis = Rotation.from_rotvec(pelvis_turn).as_matrix()
    root = REST_OFFSETS[0] + pelvis_at
    for f, side in enumerate(SIDES):
        hip_at = root + r_pelvis @ REST_OFFSETS[_j(f"{side}_hip")]
        local_target = np.einsum("tji,tj->ti", r_pelvis, feet[:, f] - hip_at)
        hip, knee = two_bone_ik(
            local_target,
            REST_OFFSETS[_j(f"{side}_knee")],
            REST_OFFSETS[_j(f"{side}_ankle")],
            np.array([0.0, 0.0, 1.0]),
            KNEE_AXIS,
        )
        ankle = np.swapaxes(r_pelvis @ hip @ knee, -1, -2)  # the foot stays flat and forward
        pose[:, _j(f"{side}_hip")] = _rotvec(hip)
        pose[:, _j(f"{side}_knee")] = _rotvec(knee)
        pose[:, _j(f"{side}_ankle")] = _rotvec(ankle)

    # components: slow part of the body (coarse), the rest with the handshapes (mid), finger noise (fine)
    base = pose[0].copy()
    base[:22] = pose[:, :22].mean(0)
    body = pose[:, :22] - base[None, :22]
    coarse = np.zeros_like(pose)
    coarse[:, :22] = _smooth(body, SLOW_HZ)
    mid = pose - base[None] - coarse
    sos = butter(2, (3.0, 8.0), btype="band", fs=FPS, output="sos")
    hand_joints = [_j("left_wrist"), _j("right_wrist"), *range(25, 55)]
    noise = rng.normal(0.0, 1.0, (frames, len(hand_joints), 3))
    if frames > 15:
        noise = sosfiltfilt(sos, noise, axis=0)
    envelope = (0.3 + _smooth(energy, 1.0).clip(0, None))[:, None, None]
    fine = np.zeros_like(pose)
    fine[:, hand_joints] = noise * envelope * 0.1 * style.fine
    fine[:, hand_joints[:2]] *= 0.5

    jaw = np.zeros_like(pose)
    jaw[:, _j("jaw"), 0] = 0.35 * _smooth(energy, 6.0).clip(0, None)
    expressions = np.zeros((frames, NUM_EXPRESSIONS))
    expressions[:, 0] = 1.5 * _smooth(energy, 4.0)
    expressions[:, 1] = _smooth(rng.normal(0, 1, frames), 0.5) * 2.0 * energy
    expressions[:, 2:10] = _smooth(rng.normal(0, 0.3, (frames, 8)), 0.3)
    expressions[:, 10] = 1.2 * nods
    trans = pelvis_at.copy()
    return {"base": base, "coarse": coarse, "mid": mid, "fine": fine, "jaw": jaw, "trans": trans, "expressions": expressions}
