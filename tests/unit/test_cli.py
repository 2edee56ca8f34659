"""`triton-qa build` on tiny checkpoints: repository layout and options."""

from __future__ import annotations

import pytest

from python_backend import protocol
from triton_qa.cli import main


def _config(repository, model_id, step=None):
    name = protocol.ensemble_name(model_id)
    folder = name if step is None else protocol.step_names(name)[step]
    return (repository / folder / "config.pbtxt").read_text()


def test_build_several_models_into_one_repository(checkpoints, tmp_path):
    code = main(
        [
            "build",
            str(checkpoints["bert"]),
            str(checkpoints["distilbert"]),
            "--output",
            str(tmp_path),
            "--model-id",
            "acme/bert-qa",
            "--model-id",
            "acme/distilbert-qa",
        ]
    )
    assert code == 0
    assert (tmp_path / "acme--bert-qa" / "config.pbtxt").exists()
    assert (tmp_path / "acme--distilbert-qa_model" / "1" / "model.onnx").exists()
    assert 'string_value: "acme/bert-qa"' in _config(tmp_path, "acme/bert-qa")
    bert_model = _config(tmp_path, "acme/bert-qa", "model")
    assert 'name: "token_type_ids"' in bert_model
    assert "allow_ragged_batch: true" in bert_model
    distilbert_model = _config(tmp_path, "acme/distilbert-qa", "model")
    assert "token_type_ids" not in distilbert_model


def test_build_native_onnxruntime_with_tensorrt(checkpoints, tmp_path):
    code = main(
        [
            "build",
            str(checkpoints["roberta"]),
            "--output",
            str(tmp_path),
            "--runtime",
            "onnxruntime",
            "--tensorrt",
            "--model-id",
            "acme/roberta-qa",
        ]
    )
    assert code == 0
    model = _config(tmp_path, "acme/roberta-qa", "model")
    assert 'backend: "onnxruntime"' in model
    assert 'name: "tensorrt"' in model
    assert 'value: "FP16"' in model
    assert "allow_ragged_batch" not in model
    assert "KIND_CPU" not in model
    assert not (tmp_path / "acme--roberta-qa_model" / "1" / "model.py").exists()
    tokenize = _config(tmp_path, "acme/roberta-qa", "tokenize")
    assert 'key: "pad_to_multiple_of"\n  value: { string_value: "32" }' in tokenize


def test_build_tensorrt_needs_native_runtime(checkpoints, tmp_path, capsys):
    arguments = ["build", str(checkpoints["roberta"]), "--output", str(tmp_path)]
    assert main([*arguments, "--tensorrt"]) == 2
    assert "--tensorrt needs --runtime onnxruntime" in capsys.readouterr().err


def test_build_rejects_model_id_count_mismatch(checkpoints, tmp_path, capsys):
    code = main(
        [
            "build",
            str(checkpoints["bert"]),
            str(checkpoints["roberta"]),
            "--output",
            str(tmp_path),
            "--model-id",
            "only/one",
        ]
    )
    assert code == 2
    assert "--model-id once per MODEL" in capsys.readouterr().err


def test_build_missing_folder_is_clear(tmp_path, capsys):
    code = main(["build", str(tmp_path / "absent"), "--output", str(tmp_path / "out")])
    assert code == 1
    error = capsys.readouterr().err
    assert "absent" in error
    assert "not found" in error


@pytest.mark.parametrize("runtime", ["python", "onnxruntime"])
def test_generated_configs_parse_as_model_config(checkpoints, tmp_path, runtime):
    """Every config.pbtxt is valid text format for Triton's ModelConfig message."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    arguments = ["build", str(checkpoints["bert"]), "--output", str(tmp_path)]
    arguments += ["--runtime", runtime, "--model-id", "acme/bert-qa"]
    if runtime == "onnxruntime":
        arguments.append("--tensorrt")
    assert main(arguments) == 0
    configs = sorted(tmp_path.glob("*/config.pbtxt"))
    assert len(configs) == 4
    for path in configs:
        config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        assert config.name == path.parent.name
    model = text_format.Parse(
        (tmp_path / "acme--bert-qa_model" / "config.pbtxt").read_text(),
        model_config_pb2.ModelConfig(),
    )
    assert model.max_batch_size == 16
    assert model.dynamic_batching.max_queue_delay_microseconds >= 0
    if runtime == "onnxruntime":
        accelerator = (
            model.optimization.execution_accelerators.gpu_execution_accelerator[0]
        )
        assert accelerator.name == "tensorrt"
        assert accelerator.parameters["trt_profile_max_shapes"].startswith(
            "input_ids:16x512"
        )


def test_serve_rejects_port_in_use(capsys):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code = main(["serve", "--port", str(port)])
    assert code == 2
    assert f"port {port} is already in use; pick another with --port" in (
        capsys.readouterr().err
    )


def test_serve_reports_missing_checkpoint(tmp_path, capsys):
    from tests.conftest import free_port

    ports = [str(free_port()) for _ in range(4)]
    code = main(
        [
            "serve",
            "--model",
            str(tmp_path / "absent"),
            "--port",
            ports[0],
            "--triton-http-port",
            ports[1],
            "--triton-grpc-port",
            ports[2],
            "--triton-metrics-port",
            ports[3],
        ]
    )
    assert code == 1
    assert "not found" in capsys.readouterr().err
