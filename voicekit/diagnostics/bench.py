"""``voicekit bench``: measure the backends and their speed features on this machine.

Every variant speaks the same public-domain text (``bench_text.txt``) with the same
voice and the same noise keys, so outputs are comparable sample for sample:

- stage ``vocoder``: the same latents (from onnxruntime's acoustic stage) through
  each variant's vocoder;
- stage ``pipeline``: phoneme ids through each variant's whole ``synthesize``,
  in calls of the size the pipeline would make (phonemization is done once,
  before timing, as it is the same for every variant).

Quality is measured against the reference: onnxruntime, fp32, on the CPU (the
voice's own graph). ``snr_db`` is None where a variant's output is identical to
the reference. Speed is seconds of audio per wall second (``x_realtime``) of a
timed pass after a warm-up; ``speedup`` divides by the stage's baseline (``ort``
when measured, else the stage's first variant).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import math
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from voicekit.backends.base import Backend, Utterance, call_results, create_backend
from voicekit.backends.ort import physical_cores
from voicekit.backends.voices import Voice
from voicekit.errors import DeviceError, InputError, VoicekitError
from voicekit.settings import SynthSettings
from voicekit.system.devices import choose_device, gpu_probe_for, parse_device, torch_cuda_count
from voicekit.text.normalize import language_of, normalize_text
from voicekit.text.sentences import split_sentences

# Enough audio for steady timings; on 2 CPU cores the default run takes about 2 minutes
# per variant (the estimate run_bench announces says how long for the chosen ones).
DEFAULT_SECONDS = 240.0

# Seconds of audio per wall second, per physical core, of each variant's timed pass on
# the CPU; from `voicekit bench --seconds 10 --variants ort,torch,torch-chunked
# --against-piper` on the 2-core machine (docs/BENCHMARKS.md, "bench's own estimate").
# Only for the estimate printed before a run: what the run measures is what it reports.
CPU_SPEED_PER_CORE = {
    ("ort", "vocoder"): 11.0, ("ort", "pipeline"): 8.5,
    ("torch", "vocoder"): 9.5, ("torch", "pipeline"): 6.5,
    ("torch-chunked", "vocoder"): 9.0, ("torch-chunked", "pipeline"): 6.5,
    ("piper", "pipeline"): 9.0,
}  # fmt: skip
# Wall seconds besides the timed passes: loading a backend and its warm-up.
SETUP_SECONDS = {"ort": 0.5, "torch": 1.5, "piper": 2.0}
# Cores that other processes kept busy, on average, above which a timing is flagged.
BUSY_CORES = 0.25

STAGES = ("vocoder", "pipeline")
BENCH_CHUNK_FRAMES = 128
SEED = 1234


@dataclass(frozen=True)
class Variant:
    name: str
    backend: str
    """``ort``, ``torch`` or ``piper`` (the Piper CLI, pipeline only)."""
    changes: dict[str, Any] = field(default_factory=dict)
    cuda: bool | None = None
    """True: CUDA only; False: always the CPU; None: the bench's device."""
    about: str = ""


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("ort", "ort", cuda=False, about="onnxruntime on the CPU (baseline, reference)"),
        Variant("ort-cuda", "ort", cuda=True, about="onnxruntime CUDA execution provider"),
        Variant(
            "torch",
            "torch",
            {"cuda_graphs": False},
            about="our PyTorch VITS, eager, whole sentences",
        ),
        Variant(
            "torch-chunked",
            "torch",
            {"chunk_frames": BENCH_CHUNK_FRAMES},
            about=f"vocoder in {BENCH_CHUNK_FRAMES}-frame chunks with overlap",
        ),
        Variant("torch-cudagraph", "torch", {"cuda_graphs": True}, cuda=True),
        Variant("torch-bf16", "torch", {"precision": "bf16"}, cuda=True),
        Variant("torch-fp16", "torch", {"precision": "fp16"}, cuda=True),
        Variant("torch-compile", "torch", {"compile": True}, cuda=True),
        Variant("piper", "piper", cuda=False, about="the Piper CLI (python -m piper)"),
    )
}
CPU_DEFAULT = ("ort", "torch", "torch-chunked")
CUDA_DEFAULT = (
    "ort", "ort-cuda", "torch", "torch-chunked", "torch-cudagraph", "torch-bf16",
    "torch-fp16", "torch-compile",
)  # fmt: skip


@dataclass
class VariantResult:
    name: str
    stage: str
    x_realtime: float
    speedup: float
    snr_db: float | None
    max_abs_diff: float | None
    peak_mem_mb: float
    audio_seconds: float
    seconds: float
    mem_kind: str
    """``rss`` (process RSS), ``gpu`` (torch allocator peak) or ``gpu-nvml`` (driver's used)."""
    mem_growth_mb: float | None = None
    """GPU memory allocated after the last call minus after the first (flat = ~0)."""
    length_mismatches: int = 0
    busy_cores: float | None = None
    """CPU cores other processes used, on average, while this variant was timed (a
    shared machine's noise: torch's CPU threads slow down far more than onnxruntime's)."""
    cold_seconds: float | None = None
    """Loading the backend plus its first pass: new shapes (graph captures, compiles,
    cuDNN tuning) included, at load or on first use."""
    cold_x_realtime: float | None = None
    graphs: int | None = None
    """Distinct shapes the torch variant ran: CUDA graphs captured or compiles, one each."""
    graphs_by_stage: dict[str, int] | None = None
    padding_efficiency: dict[str, float] | None = None
    """Useful over computed positions of the timed pass, per stage (torch only)."""


@dataclass
class BenchReport:
    device: str
    audio_seconds: float
    utterances: int
    threads: int
    receptive_field_frames: int | None
    overlap_frames: int
    variants: list[VariantResult] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    """Variants that raised: {"name", "stage", "error"}; the others still ran."""
    profile: str | None = None
    decoder_snr_db: dict[str, float] | None = None
    """SNR of a bf16 and an fp16 decoder against fp32, on the CPU, same latents (torch
    only). CPU kernels, not the GPU's: the formats' rounding, the GPU figure is the
    torch-bf16/fp16 variants' ``snr_db``."""
    reference: str = "ort fp32 on the CPU"
    fastest: str | None = None
    """The voicekit variant with the most audio per second (pipeline stage if measured)."""
    auto: str = ""
    """What ``synth --device auto --backend auto`` uses here: ``<backend> on <device>``."""
    busy: bool = False
    """Other processes took a share of the CPU during some timing (see busy_cores)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Run:
    outputs: list[np.ndarray]
    seconds: float
    peak_mb: float
    mem_kind: str
    growth: float | None = None
    busy_cores: float | None = None
    cold_seconds: float | None = None
    graphs: int | None = None
    padding: dict[str, float] | None = None
    by_stage: dict[str, int] | None = None


class _OtherLoad:
    """CPU time other processes used while a block ran, in cores (system-wide minus ours)."""

    def __enter__(self) -> _OtherLoad:
        self._start = self._sample()
        self.cores: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        if self._start is not None and end is not None and end[0] > self._start[0]:
            wall = end[0] - self._start[0]
            others = (end[1] - self._start[1]) - (end[2] - self._start[2])
            self.cores = max(0.0, others / wall)

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            system = psutil.cpu_times()
            mine = psutil.Process().cpu_times()
        except (psutil.Error, OSError):
            return None
        busy = sum(system) - system.idle - getattr(system, "iowait", 0.0)
        ours = mine.user + mine.system + mine.children_user + mine.children_system
        return time.perf_counter(), busy, ours


def bench_text() -> str:
    return (
        importlib.resources.files("voicekit.diagnostics").joinpath("bench_text.txt").read_text("utf-8")
    )


def bench_sentences(voice: Voice, max_phonemes: int = 400) -> list[str]:
    lang = language_of(voice.language)
    sentences: list[str] = []
    text = "\n".join(line for line in bench_text().splitlines() if not line.startswith("#"))
    for paragraph in text.split("\n\n"):
        if paragraph.strip():
            sentences.extend(split_sentences(normalize_text(paragraph, lang), max_phonemes))
    return sentences


def bench_utterances(voice: Voice, seconds: float) -> tuple[list[str], list[Utterance]]:
    """Sentences of the bench text (cycled if need be) adding up to about ``seconds``."""
    texts: list[str] = []
    utts: list[Utterance] = []
    sentences = bench_sentences(voice)
    # Piper voices speak ~14 characters a second at length_scale 1; the real
    # length is known after the acoustic stage, which trims the list.
    budget = max(1.0, seconds) * 14 * 1.5
    chars = 0
    i = 0
    while chars < budget:
        text = sentences[i % len(sentences)]
        ids = voice.phoneme_ids(text)
        if len(ids) > 3:
            texts.append(text)
            utts.append(Utterance(np.asarray(ids, dtype=np.int64), (SEED, 0xBE7C, i)))
            chars += len(text)
        i += 1
    return texts, utts


def compare(
    outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]
) -> tuple[float | None, float, int]:
    """(SNR dB over everything or None if identical, max |diff|, items of different length)."""
    signal = noise = 0.0
    worst = 0.0
    mismatched = 0
    for out, ref in zip(outputs, reference, strict=True):
        n = min(len(out), len(ref))
        mismatched += len(out) != len(ref)
        diff = out[:n].astype(np.float64) - ref[:n]
        signal += float(np.sum(np.square(ref[:n], dtype=np.float64)))
        noise += float(np.sum(np.square(diff)))
        if n:
            worst = max(worst, float(np.max(np.abs(diff))))
    snr = None if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)
    return snr, worst, mismatched


def resolve_device(device: str) -> str:
    """bench measures the torch variants too, so CUDA here means CUDA as torch sees it."""
    wanted = parse_device(device)
    if wanted.kind == "auto":
        return "cuda:0" if torch_cuda_count() else "cpu"
    if wanted.is_cuda and not torch_cuda_count():
        raise DeviceError(f"--device {device}: torch finds no CUDA device here")
    return f"cuda:{wanted.index or 0}" if wanted.is_cuda else "cpu"


def describe_device(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {physical_cores()} cores)"


def pick_variants(names: Sequence[str] | None, device: str, against_piper: bool) -> list[Variant]:
    chosen = list(names) if names else list(CUDA_DEFAULT if device != "cpu" else CPU_DEFAULT)
    unknown = [n for n in chosen if n not in VARIANTS]
    if unknown:
        raise InputError(
            f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
        )
    if against_piper and "piper" not in chosen:
        chosen.append("piper")
    return [VARIANTS[n] for n in dict.fromkeys(chosen)]


class _Meter:
    """Peak memory while a variant runs.

    ``torch`` on CUDA: the caching allocator's peak; ``nvml``: the GPU's used memory
    as the driver reports it (onnxruntime on CUDA); else the process RSS, or with
    ``pids`` the largest of those child processes' RSS, sampled every 50 ms.
    """

    def __init__(
        self,
        device: str,
        pids: Callable[[], list[int]] | None = None,
        probe: Callable[[], tuple[float, float] | None] | None = None,
    ) -> None:
        self.device = device
        self.peak = 0.0
        self._pids = pids
        self._probe = probe

    @property
    def kind(self) -> str:
        if self._probe is not None:
            return "gpu-nvml"
        return "gpu" if self.device.startswith("cuda") else "rss"

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        if self.device.startswith("cuda") and self._probe is None:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            try:
                yield
            finally:
                torch.cuda.synchronize(self.device)
                self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        import threading

        stop = threading.Event()
        me = psutil.Process()

        def sample() -> None:
            while True:
                if self._probe is not None:
                    used = self._probe()
                    mb = used[0] if used else 0.0
                else:
                    # a child's memory is its own: ours (torch's weights...) is not the Piper CLI's
                    rss = 0 if self._pids else me.memory_info().rss
                    for pid in self._pids() if self._pids else []:
                        with contextlib.suppress(psutil.Error):
                            rss = max(rss, psutil.Process(pid).memory_info().rss)
                    mb = rss / 2**20
                self.peak = max(self.peak, mb)
                if stop.wait(0.05):
                    return

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def _calls(backend: Backend, utts: Sequence[Utterance]) -> Iterator[list[Utterance]]:
    per_call = max(1, backend.batch_sentences)
    for start in range(0, len(utts), per_call):
        yield list(utts[start : start + per_call])


def _time_backend(
    backend: Backend, stage: str, utts: Sequence[Utterance], latents: Sequence[Any], device: str
) -> _Run:
    cuda = device.startswith("cuda")
    is_torch = getattr(backend, "name", "") == "torch"
    # Warm up: a full pass for torch and on CUDA (captures graphs, compiles, tunes cuDNN),
    # timed as the cold figure a fresh process pays; a taste for onnxruntime on the CPU.
    full = cuda or is_torch
    start = time.perf_counter()
    if stage == "vocoder":
        backend.vocoder(latents if full else latents[:2])
    else:
        for call in _calls(backend, utts if full else utts[:2]):
            backend.synthesize(call)
    cold = time.perf_counter() - start if full else None
    for counter in ("useful", "computed"):  # padding of the timed pass only
        getattr(backend, counter, {}).clear()
    probe = gpu_probe_for(device) if cuda and not is_torch else None
    meter = _Meter(device if is_torch or probe else "cpu", probe=probe)
    memory: list[float] = []
    outputs: list[np.ndarray] = []
    with meter.measure(), _OtherLoad() as load:
        start = time.perf_counter()
        if stage == "vocoder":
            outputs = backend.vocoder(latents)
        else:
            # As the pipeline runs them: on CUDA call N+1's durations beside N's vocoder.
            for audio in call_results(backend, _calls(backend, utts)):
                outputs.extend(audio)
                stats = backend.memory() if is_torch else {}  # type: ignore[attr-defined]
                if "allocated_mb" in stats:
                    memory.append(stats["allocated_mb"])
        seconds = time.perf_counter() - start
    growth = memory[-1] - memory[0] if len(memory) > 1 else None
    graphs = backend.graph_count() if is_torch else None  # type: ignore[attr-defined]
    padding = (
        {k: round(v, 4) for k, v in backend.padding_efficiency().items()}  # type: ignore[attr-defined]
        if is_torch
        else None
    )
    by_stage = (
        {k: len(v) for k, v in backend.shapes.items()}  # type: ignore[attr-defined]
        if is_torch
        else None
    )
    return _Run(
        outputs, seconds, meter.peak, meter.kind, growth, load.cores, cold, graphs, padding,
        by_stage,
    )  # fmt: skip


def _time_piper(voice: Voice, texts: Sequence[str]) -> _Run:
    if shutil.which(sys.executable) is None:  # pragma: no cover - always there
        raise DeviceError("no Python interpreter to run the Piper CLI")
    with tempfile.TemporaryDirectory(prefix="voicekit-bench-") as tmp:
        out = Path(tmp) / "piper.wav"
        cmd = [sys.executable, "-m", "piper", "-m", str(voice.model_path), "-f", str(out)]
        children: list[int] = []
        meter = _Meter("cpu", pids=lambda: children)
        with meter.measure(), _OtherLoad() as load:
            start = time.perf_counter()
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            children.append(proc.pid)
            _, err = proc.communicate("\n".join(texts).encode())
            seconds = time.perf_counter() - start
        if proc.returncode != 0 or not out.is_file():
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise DeviceError(f"the Piper CLI failed: {tail[0]}")
        with wave.open(str(out), "rb") as wav:
            frames = wav.readframes(wav.getnframes())
        audio = np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768
    return _Run([audio], seconds, meter.peak, "rss", busy_cores=load.cores)


def estimate_seconds(
    variants: Sequence[Variant], stages: Sequence[str], seconds: float, device: str, threads: int
) -> float | None:
    """Wall seconds a run should take, from measured CPU speeds; None where none is known."""
    if device != "cpu":
        return None  # GPU speeds were not measured on a machine we can name
    cores = threads or physical_cores()
    total = seconds / (CPU_SPEED_PER_CORE[("ort", "vocoder")] * 4 * cores)  # the reference
    for stage in stages:
        for variant in variants:
            if variant.backend == "piper" and stage != "pipeline":
                continue
            speed = CPU_SPEED_PER_CORE.get((variant.name, stage))
            if speed is None:
                return None
            total += SETUP_SECONDS[variant.backend] + seconds / (speed * cores)
    return total


def run_bench(
    voice: Voice,
    *,
    device: str = "auto",
    seconds: float = DEFAULT_SECONDS,
    variants: Sequence[str] | None = None,
    stages: Sequence[str] = STAGES,
    against_piper: bool = False,
    threads: int = 0,
    progress: Callable[[str], None] | None = None,
    profile: str | None = None,
) -> BenchReport:
    """Run the chosen variants over about ``seconds`` of audio; results in a report.

    ``profile`` applies a settings profile's engine settings (batch size, chunks,
    precision...) to the torch variants, e.g. ``gpu-large`` to see its shape policy.
    """
    say = progress or (lambda _msg: None)
    if seconds <= 0:
        raise InputError(f"--seconds {seconds} must be above 0")
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise InputError(f"unknown stage(s) {', '.join(bad)}; choose from {', '.join(STAGES)}")
    device = resolve_device(device)
    chosen = pick_variants(variants, device, against_piper)
    runnable = [v for v in chosen if not (v.cuda and not device.startswith("cuda"))]
    steps = [(s, v) for s in stages for v in runnable if v.backend != "piper" or s == "pipeline"]
    started = 0

    def counter() -> str:
        nonlocal started
        started += 1
        return f"[{started}/{len(steps)}]"

    guess = estimate_seconds(runnable, stages, seconds, device, threads)
    if guess is not None:
        say(
            f"{len(steps)} measurements of about {seconds:g} s of audio each; estimate: "
            f"{_duration(guess)} on {_cores(threads or physical_cores())} (from speeds measured "
            "on a quiet 2-core machine; a busy or slower machine takes longer)"
        )
    # Whole sentences unless a variant chunks: the reference is the voice's own graph.
    base = SynthSettings(device="cpu", backend="ort", threads=threads, chunk_frames=0).validate()
    texts, utts = bench_utterances(voice, seconds)
    tuned = _profile_settings(profile)

    say("reference: onnxruntime fp32 on the CPU")
    ort_chosen = any(v.name == "ort" for v in chosen)
    reference: dict[str, list[np.ndarray]] = {}
    timed_ort: dict[str, _Run] = {}
    ref_backend = create_backend("ort", voice, base, "cpu")
    try:
        latents = ref_backend.acoustic(utts)
        hop = voice.hop_length
        keep, total = 0, 0.0
        while keep < len(latents) and total < seconds:
            total += latents[keep].frames * hop / voice.sample_rate
            keep += 1
        texts, utts, latents = texts[:keep], utts[:keep], latents[:keep]
        for stage in stages:
            if ort_chosen:  # the baseline's timed run doubles as the reference
                say(f"{counter()} {stage}: ort on cpu")
                timed_ort[stage] = _time_backend(ref_backend, stage, utts, latents, "cpu")
                say(_measured("ort", stage, timed_ort[stage], voice))
                reference[stage] = timed_ort[stage].outputs
            elif stage == "vocoder":
                reference[stage] = ref_backend.vocoder(latents)
            else:
                reference[stage] = ref_backend.synthesize(utts)
    finally:
        ref_backend.close()
    audio_seconds = sum(lat.frames for lat in latents) * hop / voice.sample_rate

    rf = _receptive_field(voice) if any(v.backend == "torch" for v in chosen) else None
    report = BenchReport(
        device=describe_device(device),
        audio_seconds=round(audio_seconds, 2),
        utterances=len(utts),
        threads=threads or physical_cores(),
        receptive_field_frames=rf,
        overlap_frames=base.overlap_frames,
        profile=profile,
    )
    for stage in stages:
        for variant in chosen:
            if variant.backend == "piper" and stage != "pipeline":
                continue
            if variant.cuda and not device.startswith("cuda"):
                report.skipped.append(
                    {"name": variant.name, "stage": stage, "reason": "needs CUDA"}
                )
                continue
            on = "cpu" if variant.cuda is False else device
            try:
                if variant.name == "ort":
                    run = timed_ort[stage]
                else:
                    say(f"{counter()} {stage}: {variant.name} on {on}")
                    settings = base.replace(**tuned) if variant.backend == "torch" else base
                    run = _measure(voice, variant, stage, on, settings, texts, utts, latents)
                    say(_measured(variant.name, stage, run, voice))
            except VoicekitError as exc:
                report.skipped.append({"name": variant.name, "stage": stage, "reason": exc.message})
                continue
            except Exception as exc:  # one broken variant must not end the bench
                error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                say(f"{stage}: {variant.name} failed: {error}")
                report.failed.append({"name": variant.name, "stage": stage, "error": error})
                continue
            report.variants.append(_result(variant, stage, run, reference[stage], voice))
    if rf is not None and "vocoder" in stages:
        say("decoder precision: bf16 and fp16 against fp32 on the CPU")
        try:
            report.decoder_snr_db = decoder_precision_snr(voice, latents)
        except Exception as exc:  # a measurement, not worth ending the bench for
            report.failed.append(
                {"name": "decoder-precision", "stage": "vocoder", "error": f"{exc}"[:300]}
            )
    for stage in stages:  # speedups against ort where it ran, else the stage's first variant
        rows = [v for v in report.variants if v.stage == stage]
        base_row = next((v for v in rows if v.name == "ort"), rows[0] if rows else None)
        for v in rows:
            v.speedup = round(v.x_realtime / base_row.x_realtime, 3) if base_row else 1.0
    stage = "pipeline" if any(v.stage == "pipeline" for v in report.variants) else "vocoder"
    ours = [v for v in report.variants if v.stage == stage and v.name != "piper"]
    best = max(ours, key=lambda v: v.x_realtime, default=None)
    report.fastest = best.name if best else None
    report.busy = any((v.busy_cores or 0) > BUSY_CORES for v in report.variants)
    choice = choose_device(device, "auto")
    report.auto = f"{choice.backend} on {choice.device}"
    return report


def _cores(n: int) -> str:
    return f"{n} core" if n == 1 else f"{n} cores"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    return f"about {round(seconds / 60):.0f} min"


def _measured(name: str, stage: str, run: _Run, voice: Voice) -> str:
    heard = sum(len(a) for a in run.outputs) / voice.sample_rate
    busy = (
        f"; other processes kept {run.busy_cores:.1f} cores busy"
        if (run.busy_cores or 0) > BUSY_CORES
        else ""
    )
    return (
        f"      {stage}: {name}: {heard / max(run.seconds, 1e-9):.1f}x real time "
        f"({run.seconds:.1f} s){busy}"
    )


def _result(
    variant: Variant, stage: str, run: _Run, reference: Sequence[np.ndarray], voice: Voice
) -> VariantResult:
    heard = sum(len(a) for a in run.outputs) / voice.sample_rate
    x_rt = heard / max(run.seconds, 1e-9)
    if variant.backend == "piper":
        snr, worst, mismatched = None, None, 0  # its own noise and pauses
    else:
        snr, worst, mismatched = compare(run.outputs, reference)
    return VariantResult(
        name=variant.name,
        stage=stage,
        x_realtime=round(x_rt, 2),
        speedup=1.0,
        snr_db=None if snr is None else round(snr, 2),
        max_abs_diff=None if worst is None else float(f"{worst:.3g}"),
        peak_mem_mb=round(run.peak_mb, 1),
        audio_seconds=round(heard, 2),
        seconds=round(run.seconds, 3),
        mem_kind=run.mem_kind,
        mem_growth_mb=None if run.growth is None else round(run.growth, 1),
        length_mismatches=mismatched,
        busy_cores=None if run.busy_cores is None else round(run.busy_cores, 2),
        cold_seconds=None if run.cold_seconds is None else round(run.cold_seconds, 3),
        cold_x_realtime=(
            None if run.cold_seconds is None else round(heard / max(run.cold_seconds, 1e-9), 2)
        ),
        graphs=run.graphs,
        graphs_by_stage=run.by_stage,
        padding_efficiency=run.padding,
    )


def decoder_precision_snr(
    voice: Voice, latents: Sequence[Any], max_frames: int = 600
) -> dict[str, float]:
    """SNR (dB) of bf16 and fp16 copies of the torch decoder against its fp32 self.

    Runs on the CPU over the first latents up to ``max_frames`` frames, so the
    reduced formats can be weighed (against the 20 dB floor the bf16 tests hold)
    on a machine without a GPU.
    """
    import copy

    import torch

    from voicekit.backends.torch.model import build_model
    from voicekit.backends.torch.weights import load_weights

    dec = build_model(load_weights(voice.model_path, voice.config)).dec
    zs: list[np.ndarray] = []
    total = 0
    for lat in latents:
        z = np.asarray(getattr(lat, "z", lat), dtype=np.float32).reshape(-1, lat.frames)
        zs.append(z[:, : max(1, max_frames - total)])
        total += zs[-1].shape[-1]
        if total >= max_frames:
            break
    out: dict[str, float] = {}
    with torch.inference_mode():
        ref = [dec(torch.from_numpy(z)[None]).numpy().ravel() for z in zs]
        for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            half = copy.deepcopy(dec).to(dtype)
            got = [half(torch.from_numpy(z)[None].to(dtype)).float().numpy().ravel() for z in zs]
            snr, _, _ = compare(got, ref)
            out[name] = math.inf if snr is None else round(snr, 2)
    return out


def _profile_settings(profile: str | None) -> dict[str, Any]:
    """A profile's engine settings for the torch variants (device and backend stay the bench's)."""
    if profile is None:
        return {}
    from voicekit.profiles import load_profile

    values = load_profile(profile).values
    keep = ("batch_size", "chunk_frames", "overlap_frames", "precision", "cuda_graphs", "compile")
    return {k: values[k] for k in keep if k in values}


def _receptive_field(voice: Voice) -> int | None:
    """The decoder's receptive field in latent frames (what chunk overlap must cover)."""
    try:
        from voicekit.backends.torch.decoder import receptive_field
        from voicekit.backends.torch.weights import load_weights
    except ImportError:  # torch not installed: the torch variants are skipped anyway
        return None
    try:
        return max(receptive_field(load_weights(voice.model_path, voice.config).arch))
    except VoicekitError:
        return None


def _measure(
    voice: Voice,
    variant: Variant,
    stage: str,
    device: str,
    base: SynthSettings,
    texts: Sequence[str],
    utts: Sequence[Utterance],
    latents: Sequence[Any],
) -> _Run:
    if variant.backend == "piper":
        return _time_piper(voice, texts)
    settings = base.replace(backend=variant.backend, **variant.changes).validate()
    start = time.perf_counter()
    backend = create_backend(variant.backend, voice, settings, device)
    load = time.perf_counter() - start  # torch on CUDA captures its fixed shapes here
    try:
        run = _time_backend(backend, stage, utts, latents, device)
        if run.cold_seconds is not None:
            run.cold_seconds += load
        return run
    finally:
        backend.close()
