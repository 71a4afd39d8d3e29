"""Synthesis-time estimates for ``--dry-run``, from speeds measured in docs/BENCHMARKS.md.

Only measured figures are used; a device/backend without a measurement gets no
estimate rather than a guess.
"""

from __future__ import annotations

from voicekit.backends.ort import physical_cores
from voicekit.system.devices import DeviceChoice

# Seconds of audio per wall second per physical core on the 2-core machine: a whole
# synth run with ort (18.1x, BENCHMARKS §1) and bench's torch pipeline stage (12.2x, §4).
_CPU_X_REALTIME_PER_CORE = {"ort": 9.0, "torch": 6.0}


def estimate_synthesis_seconds(audio_seconds: float, choice: DeviceChoice,
                               threads: int = 0) -> float | None:
    if choice.device != "cpu":
        return None
    per_core = _CPU_X_REALTIME_PER_CORE.get(choice.backend)
    if per_core is None:
        return None
    return audio_seconds / (per_core * (threads or physical_cores()))
