"""Connected digits built from the Free Spoken Digit Dataset (FSDD).

FSDD holds isolated digits, `recordings/{digit}_{speaker}_{take}.wav` at 8 kHz.
The connected-digit protocol strings together 1-7 takes of one speaker with
50-250 ms of digital silence between digits (none at the edges: FSDD takes
already carry their own short lead-in and tail) and resamples to 16 kHz.
Splits never share a take: dev, test and train use disjoint take ranges of
the same four speakers, and test-unseen uses two speakers absent from training.

Every utterance draws, in this order and from a generator seeded by
(seed, CRC-32 of the split's name): its speaker, its number of digits, the
digits, one take per digit, and the gaps. Changing one split's count therefore
leaves the other splits, and the first utterances of that split, unchanged.

Output under `out/`: `<split>/<id>.wav` (16 kHz mono PCM_16), `<split>.jsonl`
manifests, `composition.jsonl` (the FSDD takes and gap lengths behind each
utterance) and, written last, `protocol.json`, whose presence and content mark a
finished preparation.
"""

from __future__ import annotations

import json
import shutil
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile

from asr.audio import SAMPLE_RATE, load_audio
from asr.errors import AsrError, raise_if_interrupted
from asr.fileio import write_text
from asr.manifest import Utterance, write_manifest
from asr.text import DIGIT_WORDS

# Bump when the way utterances are drawn or written changes, so that an old
# preparation on disk is rebuilt rather than silently reused.
FORMAT_VERSION = 1


class CorpusError(AsrError):
    """A corpus source that cannot be prepared; the message names the path and the reason."""


@dataclass(frozen=True)
class Split:
    """Utterances drawn from `speakers` using takes `first_take..last_take` (inclusive)."""

    name: str
    speakers: tuple[str, ...]
    first_take: int
    last_take: int
    count: int

    @property
    def takes(self) -> range:
        return range(self.first_take, self.last_take + 1)


@dataclass(frozen=True)
class Protocol:
    """How connected-digit utterances are composed; stated once, compared everywhere."""

    splits: tuple[Split, ...]
    min_digits: int = 1
    max_digits: int = 7
    min_gap: float = 0.05  # seconds of silence between two digits
    max_gap: float = 0.25
    sample_rate: int = SAMPLE_RATE

    def split(self, name: str) -> Split:
        for split in self.splits:
            if split.name == name:
                return split
        raise KeyError(f"no split {name!r} in the protocol")

    def with_counts(self, **counts: int) -> Protocol:
        """The same protocol with some splits' sizes changed, e.g. `train=40`."""
        unknown = set(counts) - {split.name for split in self.splits}
        if unknown:
            raise KeyError(f"no split(s) {sorted(unknown)} in the protocol")
        splits = tuple(replace(s, count=counts.get(s.name, s.count)) for s in self.splits)
        return replace(self, splits=splits)


_SEEN = ("george", "jackson", "lucas", "yweweler")
CONNECTED_DIGITS = Protocol(
    splits=(
        Split("train", _SEEN, first_take=10, last_take=49, count=4000),
        Split("dev", _SEEN, first_take=5, last_take=9, count=300),
        Split("test", _SEEN, first_take=0, last_take=4, count=500),
        Split("test-unseen", ("theo", "nicolas"), first_take=0, last_take=49, count=500),
    )
)


def held_out_protocol(speaker: str, protocol: Protocol = CONNECTED_DIGITS) -> Protocol:
    """Leave one training speaker out: a selection set for choosing recipes, test takes untouched.

    train and dev keep their takes and their utterances per remaining speaker;
    a split "held-out" draws `speaker`'s dev and train takes (never its test
    takes), as many utterances as dev. At 0.1-1% WER, dev cannot tell robust
    recipes apart; a voice the model has never heard can, without `test` or
    `test-unseen` being looked at.
    """
    train, dev = protocol.split("train"), protocol.split("dev")
    if speaker not in train.speakers:
        raise ValueError(f"{speaker!r} is not a training speaker ({', '.join(train.speakers)})")
    rest = tuple(name for name in train.speakers if name != speaker)
    share = len(rest) / len(train.speakers)
    takes = (min(dev.first_take, train.first_take), max(dev.last_take, train.last_take))
    return replace(protocol, splits=(
        replace(train, speakers=rest, count=round(train.count * share)),
        replace(dev, speakers=rest, count=round(dev.count * share)),
        Split("held-out", (speaker,), *takes, count=dev.count)))


def prepare_fsdd(source, out, seed: int = 0,
                 protocol: Protocol = CONNECTED_DIGITS) -> dict[str, Path]:
    """Build the connected-digit corpus from FSDD at `source` into `out`.

    `source` is the FSDD folder holding `recordings/`. Returns split name ->
    manifest path. A finished preparation with the same protocol and seed is
    reused as it is; anything else in `out` for these splits is rebuilt.
    """
    source, out = Path(source), Path(out)
    recordings = _check_source(source, protocol)
    manifests = {split.name: out / f"{split.name}.jsonl" for split in protocol.splits}
    # Through JSON once so that it compares equal to what a previous run wrote.
    record = json.loads(json.dumps({"format_version": FORMAT_VERSION, "seed": seed,
                                    "source": str(source.resolve()),
                                    "protocol": asdict(protocol)}))
    marker = out / "protocol.json"
    if _finished(marker, record, manifests.values()):
        return manifests

    marker.unlink(missing_ok=True)  # from here on, out/ is incomplete until rewritten
    takes = _TakeCache(recordings, protocol.sample_rate)
    compositions, hours = [], {}
    for split in protocol.splits:
        utterances = []
        folder = out / split.name
        shutil.rmtree(folder, ignore_errors=True)  # drop utterances of an older, larger draw
        folder.mkdir(parents=True)
        for index, (speaker, sources, gaps) in enumerate(draw_split(split, protocol, seed)):
            audio = concatenate([takes[name] for name in sources], gaps)
            utterance_id = f"{split.name}-{index:04d}"
            path = folder / f"{utterance_id}.wav"
            soundfile.write(path, np.clip(audio, -1.0, 1.0), protocol.sample_rate,
                            subtype="PCM_16")
            text = " ".join(DIGIT_WORDS[int(name.split("_")[0])] for name in sources)
            utterances.append(Utterance(str(path), len(audio) / protocol.sample_rate, text,
                                        speaker, utterance_id))
            compositions.append({"id": utterance_id, "split": split.name, "sources": sources,
                                 "gap_samples": [int(gap) for gap in gaps]})
            raise_if_interrupted()
        write_manifest(utterances, manifests[split.name])
        hours[split.name] = round(sum(u.duration for u in utterances) / 3600, 4)

    write_text(out / "composition.jsonl", "".join(json.dumps(line) + "\n" for line in compositions))
    write_text(marker, json.dumps({**record, "hours": hours}, indent=1) + "\n")
    return manifests


def draw_split(split: Split, protocol: Protocol, seed: int = 0):
    """Yield (speaker, FSDD stems like "3_george_17", gap lengths in samples) per utterance."""
    rng = np.random.default_rng([seed, zlib.crc32(split.name.encode())])
    low = round(protocol.min_gap * protocol.sample_rate)
    high = round(protocol.max_gap * protocol.sample_rate)
    for _ in range(split.count):
        speaker = split.speakers[rng.integers(len(split.speakers))]
        length = int(rng.integers(protocol.min_digits, protocol.max_digits + 1))
        digits = rng.integers(0, 10, size=length)
        takes = rng.integers(split.first_take, split.last_take + 1, size=length)
        gaps = rng.integers(low, high + 1, size=length - 1)
        yield speaker, [f"{d}_{speaker}_{t}" for d, t in zip(digits, takes)], gaps


def concatenate(pieces: list[np.ndarray], gaps) -> np.ndarray:
    """Join n clips with n-1 runs of zeros; (samples,) each -> (samples,)."""
    parts = [pieces[0]]
    for gap, piece in zip(gaps, pieces[1:]):
        parts += [np.zeros(int(gap), dtype=np.float32), piece]
    return np.concatenate(parts)


class _TakeCache(dict):
    """FSDD stem -> float32 audio at `sample_rate`, each file loaded and resampled once."""

    def __init__(self, recordings: Path, sample_rate: int):
        super().__init__()
        self.recordings, self.sample_rate = recordings, sample_rate

    def __missing__(self, stem: str) -> np.ndarray:
        self[stem] = load_audio(self.recordings / f"{stem}.wav", self.sample_rate)
        return self[stem]


def _check_source(source: Path, protocol: Protocol) -> Path:
    recordings = source / "recordings"
    if not recordings.is_dir():
        raise CorpusError(f"{recordings}: no such folder (expected FSDD's "
                          "recordings/{digit}_{speaker}_{take}.wav)")
    present = {path.stem for path in recordings.glob("*.wav")}
    for split in protocol.splits:
        missing = [f"{digit}_{speaker}_{take}" for speaker in split.speakers
                   for digit in range(10) for take in split.takes
                   if f"{digit}_{speaker}_{take}" not in present]
        if missing:
            raise CorpusError(f"{recordings}: {len(missing)} takes of split {split.name!r} "
                              f"are missing, e.g. {missing[0]}.wav")
    return recordings


def _finished(marker: Path, record: dict, manifests) -> bool:
    try:
        written = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    written.pop("hours", None)
    return written == record and all(path.is_file() for path in manifests)

