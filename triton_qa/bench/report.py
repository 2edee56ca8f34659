"""The benchmark's table, ratios, targets, JSON file and plot."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from triton_qa.bench.runner import RegimeResult
from triton_qa.bench.timing import Measurement

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One goal: a measured value against its limit."""

    regime: str
    name: str
    value: float | None
    limit: float
    higher_is_better: bool
    unit: str
    detail: str

    @property
    def met(self) -> bool | None:
        if self.value is None or math.isnan(self.value):
            return None
        if self.higher_is_better:
            return self.value >= self.limit
        return self.value <= self.limit

    def to_dict(self) -> dict:
        return {**asdict(self), "met": self.met}


def find(
    result: RegimeResult, path: str, workload: str, concurrency: int | None = None
) -> Measurement | None:
    """Return the measurement of `path` on `workload`, the last one if several."""
    found = None
    for measurement in result.measurements:
        if measurement.path != path or measurement.workload != workload:
            continue
        if concurrency is None or measurement.concurrency == concurrency:
            found = measurement
    return found


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _rps(measurement: Measurement | None) -> float | None:
    return measurement.rps if measurement else None


def _p50(measurement: Measurement | None) -> float | None:
    return measurement.percentile(50) if measurement else None


def best_served(result: RegimeResult, workload: str) -> Measurement | None:
    """Return the gateway measurement with the highest throughput at concurrency >= 2."""
    candidates = [
        m
        for m in result.measurements
        if m.path == "gateway" and m.workload == workload and m.concurrency >= 2
    ]
    return max(candidates, key=lambda m: m.rps, default=None)


def base_targets(result: RegimeResult, loaded: int) -> list[Target]:
    regime = result.regime
    served = best_served(result, "short")
    ort = find(result, "onnxruntime", "short")
    pipeline = find(result, "pipeline", "short")
    short_loaded = find(result, "gateway", "short", loaded)
    full_loaded = find(result, "gateway", "full", loaded)
    long_served = find(result, "gateway", "long", 1)
    long_ort = find(result, "onnxruntime-per-request", "long")
    served_c = served.concurrency if served else "-"
    return [
        Target(
            regime,
            "served throughput vs raw ONNX Runtime (short)",
            _ratio(_rps(served), _rps(ort)),
            0.9,
            True,
            "x",
            f"gateway c={served_c} vs best ONNX Runtime setting",
        ),
        Target(
            regime,
            "served throughput vs pipeline one at a time (short)",
            _ratio(_rps(served), _rps(pipeline)),
            1.1,
            True,
            "x",
            f"gateway c={served_c}",
        ),
        Target(
            regime,
            "short requests vs full 384-token windows",
            _ratio(_rps(short_loaded), _rps(full_loaded)),
            1.8,
            True,
            "x",
            f"gateway throughput at c={loaded}",
        ),
        Target(
            regime,
            "2,000-word context latency vs raw ONNX Runtime on its windows",
            _ratio(_p50(long_served), _p50(long_ort)),
            1.2,
            False,
            "x",
            "p50, gateway c=1",
        ),
        _int8_target(result, loaded),
    ]


def _int8_target(result: RegimeResult, loaded: int) -> Target:
    int8 = find(result, "onnxruntime-int8", "short")
    fp32 = None
    if result.best_ort:
        fp32 = max(m["rps"] for m in result.best_ort["sweep"])
    served_ratio = _ratio(
        _rps(find(result, "gateway-int8", "short", loaded)),
        _rps(find(result, "gateway", "short", loaded)),
    )
    agreement = result.int8_agreement or {}
    detail = "best ONNX Runtime setting of each"
    if served_ratio is not None:
        detail += f"; served at c={loaded}: {served_ratio:.2f}x"
    if agreement:
        detail += (
            f"; top answer unchanged on {agreement['unchanged']} of "
            f"{agreement['pairs']} case pairs"
        )
    return Target(
        result.regime,
        "int8 throughput vs float32",
        _ratio(_rps(int8), fp32),
        2.0,
        True,
        "x",
        detail,
    )


def tiny_targets(result: RegimeResult, top: int) -> list[Target]:
    regime = result.regime
    gateway_1 = _p50(find(result, "gateway", "short", 1))
    triton_1 = _p50(find(result, "triton-grpc", "short", 1))
    added = gateway_1 - triton_1 if gateway_1 and triton_1 else None
    return [
        Target(
            regime,
            "gateway latency added at c=1 (short, p50)",
            added,
            1.0,
            False,
            "ms",
            "gateway p50 minus direct Triton gRPC p50",
        ),
        Target(
            regime,
            f"gateway throughput vs direct Triton at c={top} (short)",
            _ratio(
                _rps(find(result, "gateway", "short", top)),
                _rps(find(result, "triton-grpc", "short", top)),
            ),
            0.6,
            True,
            "x",
            "",
        ),
    ]


def evaluate_targets(
    results: list[RegimeResult], concurrency: list[int]
) -> list[Target]:
    loaded = min([c for c in concurrency if c >= 2], default=max(concurrency))
    targets = []
    for result in results:
        if result.regime == "base":
            targets += base_targets(result, loaded)
        if result.regime == "tiny":
            targets += tiny_targets(result, max(concurrency))
    return targets


def ratio_rows(result: RegimeResult) -> list[tuple[str, str, float | None]]:
    """Return (workload, comparison, ratio) rows that relate the paths."""
    rows = []
    for workload in ("short", "mix", "long", "full"):
        ort = _rps(find(result, "onnxruntime", workload))
        pipeline = _rps(find(result, "pipeline", workload))
        for gateway in [
            m
            for m in result.measurements
            if m.path == "gateway" and m.workload == workload
        ]:
            c = gateway.concurrency
            triton = _rps(find(result, "triton-grpc", workload, c))
            rows.append(
                (workload, f"gateway/triton-grpc c={c}", _ratio(gateway.rps, triton))
            )
            rows.append(
                (workload, f"gateway c={c}/onnxruntime", _ratio(gateway.rps, ort))
            )
            rows.append(
                (workload, f"gateway c={c}/pipeline", _ratio(gateway.rps, pipeline))
            )
    return [row for row in rows if row[2] is not None]


def _format(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _settings_note(measurement: Measurement) -> str:
    return ", ".join(f"{key}={value}" for key, value in measurement.settings.items())


def format_report(
    results: list[RegimeResult], targets: list[Target], machine: dict
) -> str:
    """Return the plain-text report: one table per regime, ratios, targets."""
    peak = machine.get("matmul", {}).get("gflops_per_s")
    lines = [
        (
            f"machine: {machine.get('cpu_model')}, {machine.get('cpus')} CPUs, "
            f"float32 matmul {peak} GFLOP/s"
        )
    ]
    header = (
        f"{'path':<24} {'workload':<8} {'c':>3} {'req/s':>8} {'p50 ms':>9} "
        f"{'p95 ms':>9} {'p99 ms':>9} {'CPU ms':>8} {'GFLOP/s':>8} {'%peak':>6}"
        "  settings"
    )
    for result in results:
        lines += ["", f"regime {result.regime}: workloads {result.workloads}", header]
        for m in result.measurements:
            gflops = m.flops / m.seconds / 1e9 if m.seconds else None
            share = 100.0 * gflops / peak if gflops and peak else None
            lines.append(
                f"{m.path:<24} {m.workload:<8} {m.concurrency:>3} {m.rps:>8.2f} "
                f"{_format(m.percentile(50)):>9} {_format(m.percentile(95)):>9} "
                f"{_format(m.percentile(99)):>9} {_format(m.cpu_ms_per_request):>8} "
                f"{_format(gflops):>8} "
                f"{_format(share):>6}  {_settings_note(m)}"
                + (f" errors={m.errors}" if m.errors else "")
            )
        rows = ratio_rows(result)
        if rows:
            lines += ["", f"ratios ({result.regime}, throughput):"]
            lines += [f"  {w:<6} {name:<32} {value:.2f}" for w, name, value in rows]
    if targets:
        lines += ["", "targets:"]
        for target in targets:
            verdict = {True: "met", False: "MISSED", None: "not measured"}[target.met]
            comparison = ">=" if target.higher_is_better else "<="
            lines.append(
                f"  [{verdict}] {target.regime}: {target.name}: "
                f"{_format(target.value, 2)}{target.unit} "
                f"(target {comparison} {target.limit}{target.unit}) {target.detail}"
            )
    return "\n".join(lines)


def to_json(
    results: list[RegimeResult], targets: list[Target], machine: dict, argv: list[str]
) -> dict:
    return {
        "command": ["triton-qa", "bench", *argv],
        "machine": machine,
        "regimes": [
            {
                "regime": r.regime,
                "workloads": r.workloads,
                "model_config": {
                    key: r.model_config.get(key)
                    for key in (
                        "hidden_size",
                        "num_hidden_layers",
                        "num_attention_heads",
                        "intermediate_size",
                        "max_position_embeddings",
                        "vocab_size",
                    )
                },
                "best_onnxruntime": r.best_ort,
                "int8_agreement": r.int8_agreement,
                "measurements": [m.to_dict() for m in r.measurements],
                "ratios": [
                    {"workload": w, "comparison": n, "ratio": round(v, 3)}
                    for w, n, v in ratio_rows(r)
                ],
            }
            for r in results
        ],
        "targets": [t.to_dict() for t in targets],
    }


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def plot_throughput(results: list[RegimeResult], path: Path) -> bool:
    """Plot throughput against concurrency per regime; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed; no plot written to %s", path)
        return False
    figure, axes = plt.subplots(
        1, len(results), figsize=(4.2 * len(results), 3.2), squeeze=False
    )
    for axis, result in zip(axes[0], results):
        _plot_regime(axis, result)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def _plot_regime(axis, result: RegimeResult) -> None:
    for path_name, marker in (("gateway", "o"), ("triton-grpc", "s")):
        points = sorted(
            (m.concurrency, m.rps)
            for m in result.measurements
            if m.path == path_name and m.workload == "short"
        )
        if points:
            xs, ys = zip(*points)
            axis.plot(xs, ys, marker=marker, label=path_name)
    for path_name, style in (
        ("onnxruntime", "--"),
        ("pipeline", ":"),
        ("pipeline-batched", "-."),
    ):
        measurement = find(result, path_name, "short")
        if measurement:
            axis.axhline(measurement.rps, linestyle=style, color="gray", linewidth=1)
            axis.annotate(
                path_name,
                (1, measurement.rps),
                fontsize=7,
                color="gray",
                va="bottom",
            )
    levels = sorted({m.concurrency for m in result.measurements if m.path == "gateway"})
    axis.set_xscale("log", base=2)
    if levels:
        axis.set_xticks(levels, [str(level) for level in levels])
    axis.set_ylim(bottom=0)
    axis.set_xlabel("concurrent requests")
    axis.set_ylabel("requests/s (short)")
    axis.set_title(f"{result.regime} model")
    axis.legend(fontsize=7)
