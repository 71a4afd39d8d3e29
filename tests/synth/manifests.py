"""A small valid Manifest for tests that build job folders by hand."""

from __future__ import annotations

from typing import Any

from voicekit.synth.manifest import Manifest, ManifestBucket, ManifestChapter


def make_manifest(**overrides: Any) -> Manifest:
    fields: dict[str, Any] = {
        "created": "2026-01-01T00:00:00+00:00",
        "output": "book.wav",
        "source": "book.txt",
        "sample_rate": 22050,
        "voice": {"name": "test", "path": "voice.onnx", "sha256": "0" * 64},
        "fingerprint": "f" * 16,
        "settings": {},
        "silences": {"sentence": 0.1, "paragraph": 0.2, "chapter": 0.5},
        "volume": 1.0,
        "meta": {"title": "Test"},
        "cover": None,
        "chapters": {0: ManifestChapter(1, "One")},
        "buckets": [],
    }
    fields.update(overrides)
    fields["buckets"] = [
        b if isinstance(b, ManifestBucket) else ManifestBucket(**b) for b in fields["buckets"]
    ]
    return Manifest(**fields)
