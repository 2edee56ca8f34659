"""`triton-qa bench`: measure the stack against its baselines on this machine."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import signal
import sys
import time
from importlib import metadata
from pathlib import Path

from triton_qa.bench import report
from triton_qa.bench.artifacts import MODEL_IDS, REGIMES
from triton_qa.bench.inprocess import OrtSetting, matmul_gflops
from triton_qa.bench.runner import SECTIONS, Plan, run_plan
from triton_qa.bench.served import Endpoint
from triton_qa.bench.workloads import WORKLOAD_HELP, WORKLOADS
from triton_qa.repository import RepositoryOptions

logger = logging.getLogger(__name__)

DEFAULT_DURATIONS = {"tiny": 5.0, "base": 10.0}
DEFAULT_ORT_THREADS = "1x1,1x2,2x1"
DEFAULT_ORT_BATCH_SIZES = "1,4,8"
PACKAGES = (
    "numpy",
    "onnxruntime",
    "tokenizers",
    "torch",
    "transformers",
    "tritonclient",
    "nvidia-pytriton",
    "aiohttp",
    "fastapi",
    "uvicorn",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triton-qa bench",
        description="Measure requests per second and latency percentiles of the "
        "transformers pipeline, raw ONNX Runtime, the in-process answerer, the "
        "gateway and direct Triton gRPC calls, on the same model and inputs.",
        epilog="Workloads: "
        + "; ".join(f"{name}: {text}" for name, text in WORKLOAD_HELP.items()),
    )
    _add_plan_options(parser)
    _add_onnxruntime_options(parser)
    _add_repository_options(parser)
    _add_endpoint_options(parser)
    _add_output_options(parser)
    return parser


def _add_plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="about one minute: tiny regime, short workload, 3 s per "
        "measurement, one ONNX Runtime setting, concurrency 1 and 4, no int8",
    )
    parser.add_argument("--regimes", default="tiny,base", help="tiny, base or both")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated workloads"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"what to measure, comma-separated from {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--concurrency", default="1,4,16", help="concurrent requests to the servers"
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds per measurement (default 5 for tiny, 10 for base); mixed "
        "and long workloads also run at least one pass over their requests",
    )
    parser.add_argument(
        "--long-words", type=int, default=2000, help="words per long context"
    )
    parser.add_argument(
        "--int8-max-windows",
        type=int,
        default=20,
        help="compare int8 and float32 answers only on acceptance-case pairs of "
        "at most this many windows; 0 compares every pair",
    )


def _add_onnxruntime_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("raw ONNX Runtime sweep")
    group.add_argument(
        "--ort-threads",
        default=DEFAULT_ORT_THREADS,
        help="settings to try, as SESSIONSxTHREADS: parallel callers times "
        "intra-op threads each",
    )
    group.add_argument(
        "--ort-batch-sizes",
        default=DEFAULT_ORT_BATCH_SIZES,
        help="windows per call to try",
    )


def _add_endpoint_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("running deployment")
    group.add_argument(
        "--url",
        help="measure this running gateway instead of starting a stack; it must "
        "serve the model of the one regime chosen",
    )
    group.add_argument(
        "--triton-grpc-url", help="with --url: Triton's gRPC address, host:port"
    )
    group.add_argument("--model-id", help="with --url: the served model id")
    group.add_argument(
        "--token",
        default=os.environ.get("TRITON_QA_TOKEN"),
        help="with --url: bearer token (default: $TRITON_QA_TOKEN)",
    )


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument(
        "--plot", type=Path, help="write a PNG of throughput against concurrency"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".cache/triton-qa/bench"),
        help="where the built checkpoints and repositories are kept",
    )


def _add_repository_options(parser: argparse.ArgumentParser) -> None:
    defaults = RepositoryOptions()
    group = parser.add_argument_group(
        "served model step", "repository options of the stacks that the bench starts"
    )
    group.add_argument(
        "--window-batch-size", type=int, default=defaults.window_batch_size
    )
    group.add_argument(
        "--max-queue-delay-us", type=int, default=defaults.max_queue_delay_us
    )
    group.add_argument("--model-instances", type=int, default=defaults.model_instances)
    group.add_argument(
        "--intra-op-threads", type=int, default=defaults.intra_op_threads
    )


def _csv(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    values = [value.strip() for value in text.split(",") if value.strip()]
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise SystemExit(
            f"triton-qa bench: {option} {text!r} is invalid; use values from "
            f"{', '.join(allowed)}"
        )
    return values


def _ort_settings(threads: str, batch_sizes: str) -> list[OrtSetting]:
    settings = []
    try:
        for pair in threads.split(","):
            sessions, intra = (int(part) for part in pair.lower().split("x"))
            for batch in batch_sizes.split(","):
                settings.append(OrtSetting(sessions, intra, int(batch)))
    except ValueError:
        raise SystemExit(
            f"triton-qa bench: --ort-threads {threads!r} or --ort-batch-sizes "
            f"{batch_sizes!r} is invalid; use e.g. 1x2,2x1 and 1,4,8"
        ) from None
    return settings


def make_plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        args.regimes, args.workloads = "tiny", "short"
        args.sections = "pipeline,onnxruntime,local,gateway,triton"
        args.concurrency, args.duration = "1,4", args.duration or 3.0
        args.ort_threads, args.ort_batch_sizes = "1x2", "4"
    regimes = _csv(args.regimes, REGIMES, "--regimes")
    durations = {
        regime: args.duration or DEFAULT_DURATIONS[regime] for regime in regimes
    }
    endpoint = None
    if args.url:
        if len(regimes) != 1:
            raise SystemExit("triton-qa bench: --url needs exactly one regime")
        model_id = args.model_id or MODEL_IDS[regimes[0]]
        endpoint = Endpoint(
            args.url.rstrip("/"), model_id, args.triton_grpc_url, args.token
        )
    options = RepositoryOptions(
        window_batch_size=args.window_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        model_instances=args.model_instances,
        intra_op_threads=args.intra_op_threads,
    )
    return Plan(
        regimes=regimes,
        workloads=_csv(args.workloads, WORKLOADS, "--workloads"),
        sections=_csv(args.sections, SECTIONS, "--sections"),
        concurrency=[int(c) for c in args.concurrency.split(",")],
        durations=durations,
        ort_settings=_ort_settings(args.ort_threads, args.ort_batch_sizes),
        long_words=args.long_words,
        options=options,
        int8_max_windows=args.int8_max_windows or None,
        cache_dir=args.cache_dir,
        log_dir=args.cache_dir / "logs",
        endpoint=endpoint,
    )


def machine_info() -> dict:
    """Describe the CPU, the load and the package versions behind the numbers."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "versions": versions,
        "load_average_start": os.getloadavg(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _exit_on_signal(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its report and return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        # `triton-qa bench -- --flag` passes the separator through.
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
    plan = make_plan(args)
    # SIGTERM then unwinds like Ctrl-C, so the stacks the bench started stop.
    signal.signal(signal.SIGTERM, _exit_on_signal)

    started = time.perf_counter()
    machine = machine_info()
    machine["matmul"] = matmul_gflops()
    logger.info("float32 matmul: %s", machine["matmul"])
    results = run_plan(plan)
    _finish_machine_info(machine, started)

    targets = report.evaluate_targets(results, plan.concurrency)
    print(report.format_report(results, targets, machine))
    if args.json:
        report.write_json(args.json, report.to_json(results, targets, machine, argv))
        print(f"results written to {args.json}")
    if args.plot and report.plot_throughput(results, args.plot):
        print(f"plot written to {args.plot}")
    return 0


def _finish_machine_info(machine: dict, started: float) -> None:
    machine["load_average_end"] = os.getloadavg()
    # Other work on the machine lowers a single reading, so the higher of the
    # readings before and after the run counts as the peak.
    machine["matmul_end"] = matmul_gflops()
    machine["matmul"]["gflops_per_s"] = max(
        machine["matmul"]["gflops_per_s"], machine["matmul_end"]["gflops_per_s"]
    )
    machine["wall_seconds"] = round(time.perf_counter() - started, 1)
