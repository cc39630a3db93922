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

The path comes with the text from the decoder (`asr.decoding.decode`): the frame-wise
argmax for greedy decoding, and for beam search the most probable single path
among those the beam kept for its result.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from asr.text import Vocabulary


class Word(NamedTuple):
    text: str
    start: float  # seconds from the start of the file
    end: float
    confidence: float  # 0..1, geometric mean of the word's frame posteriors


def words(path: np.ndarray, log_probs: np.ndarray, vocabulary: Vocabulary, seconds_per_frame: float,
          offset: float = 0.0, duration: float | None = None) -> list[Word]:
    """Words along a CTC path, with times in seconds from `offset`.

    path: (frames,) label ids, e.g. a decoder's `Decoded.path`;
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
