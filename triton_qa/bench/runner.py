"""Run the benchmark plan of one regime: which path, which workload, how long."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from python_backend.tokenization import WindowEncoder
from triton_qa.bench import inprocess, quality, served
from triton_qa.bench.artifacts import ModelArtifacts, build_artifacts
from triton_qa.bench.timing import Budget, Measurement
from triton_qa.bench.workloads import Workload, build_workloads
from triton_qa.repository import RepositoryOptions

logger = logging.getLogger(__name__)

SECTIONS = ("pipeline", "onnxruntime", "local", "gateway", "triton", "int8")
SERVED_SECTIONS = ("gateway", "triton")
WARM_UP_S = 3.0


@dataclass
class Plan:
    """The measurements that the command line selects."""

    regimes: list[str]
    workloads: list[str]
    sections: list[str]
    concurrency: list[int]
    durations: dict[str, float]
    ort_settings: list[inprocess.OrtSetting]
    long_words: int
    options: RepositoryOptions
    int8_max_windows: int | None
    cache_dir: Path
    log_dir: Path
    endpoint: served.Endpoint | None = None

    @property
    def loaded_concurrency(self) -> int:
        """The concurrency for workloads measured at one load level only."""
        loaded = [c for c in self.concurrency if c >= 2]
        return min(loaded) if loaded else max(self.concurrency)


@dataclass
class RegimeResult:
    regime: str
    measurements: list[Measurement] = field(default_factory=list)
    workloads: dict[str, dict] = field(default_factory=dict)
    best_ort: dict | None = None
    int8_agreement: dict | None = None
    model_config: dict = field(default_factory=dict)


class RegimeRunner:
    """Measure every selected section of one regime."""

    def __init__(self, plan: Plan, regime: str) -> None:
        self.plan = plan
        self.regime = regime
        self.duration = plan.durations[regime]
        self.result = RegimeResult(regime)
        self.artifacts: ModelArtifacts | None = None
        self.workloads: dict[str, Workload] = {}
        self.best_setting: inprocess.OrtSetting | None = None

    def run(self) -> RegimeResult:
        self.artifacts = build_artifacts(
            self.regime, self.plan.cache_dir, self.plan.options
        )
        encoder = WindowEncoder.from_files(
            self.artifacts.tokenizer_json, self.artifacts.info
        )
        self.workloads = build_workloads(
            self.plan.workloads, encoder, self.plan.long_words
        )
        self.result.workloads = {n: w.summary() for n, w in self.workloads.items()}
        self.result.model_config = inprocess.model_config(self.artifacts)
        self.cost = inprocess.request_cost(self.result.model_config)
        sections = self.plan.sections
        if "pipeline" in sections:
            self._pipeline()
        if "onnxruntime" in sections or "int8" in sections:
            self._onnxruntime()
        if "local" in sections:
            self._local()
        if any(section in sections for section in SERVED_SECTIONS):
            self._served(self.artifacts)
        if "int8" in sections:
            self._int8()
        return self.result

    def budget(self, workload: Workload, scale: float = 1.0) -> Budget:
        """Run for the regime's duration and, for mixed or long sets, one full pass."""
        whole_pass = workload.name in ("mix", "long")
        minimum = len(workload.requests) if whole_pass else 1
        return Budget(self.duration * scale, min_requests=minimum, warmup=1)

    def _record(self, measurement: Measurement) -> Measurement:
        logger.info(
            "%s %s %s c=%d: %.2f requests/s, p50 %.1f ms",
            self.regime,
            measurement.path,
            measurement.workload,
            measurement.concurrency,
            measurement.rps,
            measurement.percentile(50),
        )
        self.result.measurements.append(measurement)
        return measurement

    def _primary(self) -> Workload:
        return self.workloads.get("short") or next(iter(self.workloads.values()))

    def _pipeline(self) -> None:
        for name, workload in self.workloads.items():
            if name == "full":
                continue
            budget = self.budget(workload)
            self._record(inprocess.measure_pipeline(self.artifacts, workload, budget))
            if name in ("short", "mix"):
                self._record(
                    inprocess.measure_pipeline(
                        self.artifacts, workload, budget, inprocess.PIPELINE_BATCH_SIZE
                    )
                )

    def _onnxruntime(self) -> None:
        primary = self._primary()
        sweep = inprocess.sweep_onnxruntime(
            self.artifacts, primary, self.plan.ort_settings, self.budget(primary, 0.5)
        )
        best = max(sweep, key=lambda m: m.rps)
        self.best_setting = inprocess.OrtSetting(**best.settings)
        self.result.best_ort = {
            "workload": primary.name,
            "setting": best.settings,
            "sweep": [m.to_dict() for m in sweep],
        }
        if "onnxruntime" not in self.plan.sections:
            return
        self._record(best)
        for workload in self.workloads.values():
            if workload is primary:
                continue
            self._record(
                inprocess.measure_onnxruntime(
                    self.artifacts, workload, self.best_setting, self.budget(workload)
                )
            )
        if "long" in self.workloads:
            self._record(
                inprocess.fastest_request_window_time(
                    self.artifacts,
                    self.workloads["long"],
                    self._latency_settings(sweep),
                )
            )

    def _latency_settings(self, sweep: list[Measurement]) -> list[inprocess.OrtSetting]:
        """Return the best setting of the sweep and the best one with one caller.

        The setting with the highest throughput is not always the one that
        runs one request's windows soonest.
        """
        single = [m for m in sweep if m.settings["sessions"] == 1]
        settings = [self.best_setting]
        if single:
            fastest = max(single, key=lambda m: m.rps)
            settings.append(inprocess.OrtSetting(**fastest.settings))
        return list(dict.fromkeys(settings))

    def _local(self) -> None:
        for name in ("short", "long"):
            if name in self.workloads:
                workload = self.workloads[name]
                self._record(
                    inprocess.measure_local(
                        self.artifacts,
                        workload,
                        self.plan.options.intra_op_threads,
                        self.plan.options.window_batch_size,
                        self.budget(workload),
                    )
                )

    def _served(self, artifacts: ModelArtifacts, label: str = "") -> None:
        if self.plan.endpoint is not None:
            self._served_paths(self.plan.endpoint, label)
            return
        with served.started_stack(artifacts, self.plan.log_dir) as endpoint:
            self._served_paths(endpoint, label)

    def _served_paths(self, endpoint: served.Endpoint, label: str) -> None:
        loaded = self.plan.loaded_concurrency
        matrix = {
            "short": self.plan.concurrency,
            "mix": [loaded],
            "long": [1],
            "full": [loaded],
        }
        if label:
            matrix = {"short": [loaded]}
        self._warm_up(endpoint)
        for name, levels in matrix.items():
            workload = self.workloads.get(name)
            if workload is None:
                continue
            for concurrency in levels:
                self._served_pair(endpoint, workload, concurrency, label)

    def _warm_up(self, endpoint: served.Endpoint) -> None:
        """Send traffic for a while before measuring a freshly started stack.

        Right after readiness, the servers still run their first health checks
        and the first executions of each step, which would inflate the latency
        of whatever is measured first.
        """
        workload = self._primary()
        budget = Budget(min(WARM_UP_S, self.duration), warmup=0)
        warm = served.measure_gateway(
            endpoint, self.regime, workload, 2, budget, self.cost, path="warm-up"
        )
        logger.info("warm-up: %.1f requests/s", asyncio.run(warm).rps)

    def _served_pair(
        self,
        endpoint: served.Endpoint,
        workload: Workload,
        concurrency: int,
        label: str,
    ) -> None:
        budget = self.budget(workload)
        if "gateway" in self.plan.sections:
            gateway = served.measure_gateway(
                endpoint,
                self.regime,
                workload,
                concurrency,
                budget,
                self.cost,
                path=f"gateway{label}",
            )
            self._record(asyncio.run(gateway))
        direct = "triton" in self.plan.sections and endpoint.grpc_url is not None
        if not direct or label or workload.name == "full":
            return
        self._record(
            asyncio.run(
                served.measure_triton(
                    endpoint, self.regime, workload, concurrency, budget, self.cost
                )
            )
        )

    def _int8(self) -> None:
        int8 = build_artifacts(
            self.regime, self.plan.cache_dir, self.plan.options, quantize="int8"
        )
        primary = self._primary()
        sweep = inprocess.sweep_onnxruntime(
            int8,
            primary,
            self.plan.ort_settings,
            self.budget(primary, 0.5),
            path="onnxruntime-int8",
        )
        self._record(max(sweep, key=lambda m: m.rps))
        self.result.int8_agreement = quality.top_answer_agreement(
            self.artifacts,
            int8,
            self.plan.options.intra_op_threads,
            self.plan.int8_max_windows,
        )
        if "gateway" in self.plan.sections and self.plan.endpoint is None:
            self._served(int8, label="-int8")


def run_plan(plan: Plan) -> list[RegimeResult]:
    """Measure every regime of `plan`, in order."""
    return [RegimeRunner(plan, regime).run() for regime in plan.regimes]
