"""Word times and confidences from CTC frame posteriors.

A CTC path gives every logit frame one label (0 = blank). A character is
emitted where the path enters a non-blank label, and the frames that repeat it
belong to it. A word spans from the first frame of its first character to the
end of the last frame of its last character, frame t covering
[t, t + 1) * seconds_per_frame with seconds_per_frame = hop_length *
subsampling / sample_rate (40 ms for 10 ms hops subsampled 4x). CTC models
emit a character in one or two frames, so times are good to about a frame.

A word's confidence is the geometric mean, over the frames its characters
occupy, of the posterior of the path's label: for the greedy path, each
frame's highest posterior. Blank frames are left out because CTC spends most
frames on confident blanks, whatever it makes of the speech around them.

Greedy decoding brings its own path (the frame-wise argmax). Any other text,
such as a beam search result, is placed by `align`: the most probable path
that spells it (CTC Viterbi forced alignment).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from asr.text import Vocabulary


class Word(NamedTuple):
    text: str
    start: float  # seconds from the start of the file
    end: float
    confidence: float  # 0..1, geometric mean of the word's frame posteriors


def align(log_probs: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """The most probable CTC path that spells `labels`.

    log_probs: (frames, classes) log posteriors; labels: label ids without blanks.
    Returns (frames,) int label per frame. Raises ValueError when the frames are
    too few to spell the labels.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    frames = len(log_probs)
    if len(labels) == 0:
        return np.zeros(frames, dtype=np.int64)
    states = np.zeros(2 * len(labels) + 1, dtype=np.int64)  # blank, l1, blank, l2, ..., blank
    states[1::2] = labels
    # A path may skip the blank between two different characters, never between repeats.
    can_skip = np.zeros(len(states), dtype=bool)
    can_skip[2:] = (states[2:] != 0) & (states[2:] != states[:-2])
    score = np.full(len(states), -np.inf)
    score[:2] = log_probs[0, states[:2]] if frames else -np.inf
    moves = np.zeros((frames, len(states)), dtype=np.int8)  # 0 stay, 1 advance one, 2 skip a blank
    for frame in range(1, frames):
        candidates = np.full((3, len(states)), -np.inf)
        candidates[0] = score
        candidates[1, 1:] = score[:-1]
        candidates[2, 2:] = np.where(can_skip[2:], score[:-2], -np.inf)
        moves[frame] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[frame, states]
    state = len(states) - 1 if score[-1] >= score[-2] else len(states) - 2
    if not np.isfinite(score[state]):
        raise ValueError(f"{len(labels)} labels cannot be aligned to {frames} frames")
    path = np.empty(frames, dtype=np.int64)
    for frame in range(frames - 1, -1, -1):
        path[frame] = states[state]
        state -= moves[frame, state]
    return path


def words(path: np.ndarray, log_probs: np.ndarray, vocabulary: Vocabulary, seconds_per_frame: float,
          offset: float = 0.0, duration: float | None = None) -> list[Word]:
    """Words along a CTC path, with times in seconds from `offset`.

    path: (frames,) label ids, e.g. `log_probs.argmax(-1)` or `align(...)`;
    log_probs: (frames, classes) log posteriors the path runs through.
    `duration` (seconds of audio behind the frames) caps the times, as the
    last frame may reach past the end of the audio.
    """
    limit = offset + (len(path) * seconds_per_frame if duration is None else duration)
    path = np.asarray(path)
    path_log_probs = np.asarray(log_probs)[np.arange(len(path)), path]
    space = vocabulary.encode(" ")[0] if vocabulary.covers(" ") else None
    found, characters, scores, start, end = [], [], [], 0, 0
    previous = 0

    def close():
        if characters:
            confidence = float(np.exp(np.mean(scores)))
            times = (min(offset + frame * seconds_per_frame, limit) for frame in (start, end))
            found.append(Word("".join(characters), *(round(t, 3) for t in times), round(confidence, 4)))
        characters.clear()
        scores.clear()

    for frame, label in enumerate(path.tolist()):
        emitted, previous = label != previous, label
        if label == 0:
            continue
        if label == space:
            close()
            continue
        if not characters:
            start = frame
        if emitted:
            characters.append(vocabulary.decode([label]))
        scores.append(path_log_probs[frame])
        end = frame + 1
    close()
    return found
