"""Deterministic tiny extractive-QA checkpoints with random weights, for tests.

Each checkpoint is a real transformers ``*ForQuestionAnswering`` model with a fast
tokenizer trained on text that this module generates, so building one needs no
network access. The weights are random, so the predicted spans are valid spans
of the context but mean nothing.

Usage: ``python -m triton_qa.checkpoints FAMILY OUTPUT_DIR [--seed N]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import string
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer
from transformers import (
    BertConfig,
    BertForQuestionAnswering,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForQuestionAnswering,
    DistilBertTokenizerFast,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForQuestionAnswering,
    RobertaTokenizerFast,
)

logger = logging.getLogger(__name__)

FAMILIES = ("roberta", "bert", "distilbert")

MODEL_MAX_LENGTH = 512
VOCAB_SIZE = 2000
HIDDEN_SIZE = 32
NUM_LAYERS = 2
NUM_HEADS = 2
INTERMEDIATE_SIZE = 64
# A freshly initialised QA head (std 0.02) gives nearly uniform span scores, so
# rounding differences between PyTorch and ONNX Runtime reorder the best spans.
QA_HEAD_STD = 2.0
# The corpus stays the same for every model seed, so the seed changes only weights.
CORPUS_SEED = 20240101
CORPUS_SENTENCES = 3000

TEST_MODEL_NOTE = (
    "Test model with random weights, built by triton_qa.checkpoints. "
    "Its answers are valid spans of the context but mean nothing."
)

ROBERTA_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

_NAMES = [
    "Alice Martin", "Bob Smith", "Carla Jones", "David Brown", "Emma Wilson",
    "Frank Miller", "Grace Lee", "Henry Clark", "Isabel Young", "Jack Turner",
    "José Álvarez", "Zoë Dubois", "François Lefèvre", "Björn Åström",
    "Małgorzata Nowak", "Søren Kierkegaard", "Renée Müller", "山田太郎", "李小龙",
    "สมชาย ใจดี",
]  # fmt: skip
_PLACES = [
    "London", "Paris", "Berlin", "Madrid", "Rome", "Chicago", "Toronto", "Sydney",
    "Cairo", "Lagos", "Zürich", "São Paulo", "Kraków", "Reykjavík", "Montréal",
    "Malmö", "東京", "北京", "กรุงเทพมหานคร", "Ho Chi Minh City",
]  # fmt: skip
_SUBJECTS = [
    "physics", "history", "music", "medicine", "law", "architecture",
    "mathematics", "chemistry", "painting", "economics",
]  # fmt: skip
_BUILDINGS = [
    "museum", "library", "bridge", "cathedral", "stadium", "university",
    "harbour", "tower", "opera house", "railway station",
]  # fmt: skip
_EMOJI = ["🎉", "😀", "🚀", "🌍", "📚", "🎵", "🏛️", "❤️"]
_TEMPLATES = [
    "{name} was born in {place} in {year}.",
    "In {year}, {name} moved to {place} to study {subject}.",
    "The {building} of {place} was built in {year} by {name}.",
    "{name} won a prize for {subject} in {year} {emoji}",
    "Where was {name} born? {name} was born in {place}.",
    "When was the {building} of {place} opened? It opened in {year}.",
    "Who designed the {building} in {place}? It was designed by {name}.",
    "About {count} people visited the {building} in {place} during {year} {emoji}.",
    "{place} is known for its {building}, which dates from {year}.",
    "What did {name} study? {name} studied {subject} in {place}.",
    "「{place}」の{building}は{year}年に建てられた。",
    "{name}在{year}年去了{place}。",
    "{name} เกิดที่ {place} ในปี {year}",
    "Le {building} de {place} a été construit en {year} par {name}.",
    "The quick brown fox jumps over the lazy dog near the {building} of {place}.",
    "Experts answered questions about {subject} (for example: {name}, {year}).",
    "Prices rose by {count}% between {year} and the next year; see page {count}.",
]


def generate_corpus(
    num_sentences: int = CORPUS_SENTENCES, seed: int = CORPUS_SEED
) -> list[str]:
    """Generate English-like sentences with names, places, years and non-ASCII text."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(num_sentences):
        template = rng.choice(_TEMPLATES)
        sentences.append(
            template.format(
                name=rng.choice(_NAMES),
                place=rng.choice(_PLACES),
                subject=rng.choice(_SUBJECTS),
                building=rng.choice(_BUILDINGS),
                emoji=rng.choice(_EMOJI),
                year=rng.randint(1700, 2025),
                count=rng.randint(10, 90000),
            )
        )
    return sentences


def _batches(corpus: list[str], size: int = 256) -> Iterator[list[str]]:
    for start in range(0, len(corpus), size):
        yield corpus[start : start + size]


def _build_roberta_tokenizer(corpus: list[str], work_dir: Path) -> RobertaTokenizerFast:
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        _batches(corpus),
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=ROBERTA_SPECIAL_TOKENS,
        show_progress=False,
    )
    trainer.save_model(str(work_dir))
    # Loading from vocab.json and merges.txt runs the same slow-to-fast conversion
    # as roberta-base, so the normalizer, pre-tokenizer and post-processor match.
    return RobertaTokenizerFast(
        vocab_file=str(work_dir / "vocab.json"),
        merges_file=str(work_dir / "merges.txt"),
        model_max_length=MODEL_MAX_LENGTH,
    )


def _continuation_tokens(
    trainer: BertWordPieceTokenizer, corpus: list[str], alphabet: str
) -> list[str]:
    characters = set(alphabet)
    for sentence in corpus:
        characters.update(trainer.normalizer.normalize_str(sentence))
    return [
        f"##{character}" for character in sorted(characters) if not character.isspace()
    ]


def _build_bert_tokenizer(
    corpus: list[str], work_dir: Path, tokenizer_class: type[PreTrainedTokenizerFast]
) -> PreTrainedTokenizerFast:
    trainer = BertWordPieceTokenizer(lowercase=True)
    # Every ASCII word then tokenizes to word pieces instead of [UNK].
    alphabet = string.ascii_lowercase + string.digits + string.punctuation
    # The trainer (tokenizers 0.22) numbers "##" pieces in hash-map order, which
    # changes from run to run and reorders merges of equal count. Registering the
    # pieces up front, sorted, makes the vocabulary the same on every run.
    continuation_tokens = _continuation_tokens(trainer, corpus, alphabet)
    trainer.train_from_iterator(
        _batches(corpus),
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=BERT_SPECIAL_TOKENS + continuation_tokens,
        initial_alphabet=list(alphabet),
        show_progress=False,
    )
    trainer.save_model(str(work_dir))
    # Only vocab.txt carries over, so the "##" pieces are ordinary vocabulary
    # entries of the saved tokenizer, not special tokens.
    return tokenizer_class(
        vocab_file=str(work_dir / "vocab.txt"),
        do_lower_case=True,
        model_max_length=MODEL_MAX_LENGTH,
    )


def _build_tokenizer(family: str, work_dir: Path) -> PreTrainedTokenizerFast:
    corpus = generate_corpus()
    if family == "roberta":
        return _build_roberta_tokenizer(corpus, work_dir)
    if family == "bert":
        return _build_bert_tokenizer(corpus, work_dir, BertTokenizerFast)
    return _build_bert_tokenizer(corpus, work_dir, DistilBertTokenizerFast)


def _build_model(family: str, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    common = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "triton_qa_test_model": True,
        "triton_qa_note": TEST_MODEL_NOTE,
    }
    if family == "roberta":
        config = RobertaConfig(
            hidden_size=HIDDEN_SIZE,
            num_hidden_layers=NUM_LAYERS,
            num_attention_heads=NUM_HEADS,
            intermediate_size=INTERMEDIATE_SIZE,
            # RoBERTa positions start after the padding index, so 512 tokens need 514.
            max_position_embeddings=MODEL_MAX_LENGTH + 2,
            type_vocab_size=1,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **common,
        )
        return RobertaForQuestionAnswering(config)
    if family == "bert":
        config = BertConfig(
            hidden_size=HIDDEN_SIZE,
            num_hidden_layers=NUM_LAYERS,
            num_attention_heads=NUM_HEADS,
            intermediate_size=INTERMEDIATE_SIZE,
            max_position_embeddings=MODEL_MAX_LENGTH,
            type_vocab_size=2,
            **common,
        )
        return BertForQuestionAnswering(config)
    config = DistilBertConfig(
        dim=HIDDEN_SIZE,
        n_layers=NUM_LAYERS,
        n_heads=NUM_HEADS,
        hidden_dim=INTERMEDIATE_SIZE,
        max_position_embeddings=MODEL_MAX_LENGTH,
        **common,
    )
    return DistilBertForQuestionAnswering(config)


def _sharpen_qa_head(model: PreTrainedModel) -> None:
    with torch.no_grad():
        torch.nn.init.normal_(model.qa_outputs.weight, std=QA_HEAD_STD)
        torch.nn.init.normal_(model.qa_outputs.bias, std=QA_HEAD_STD)


def _write_readme(output_dir: Path, family: str, seed: int) -> None:
    text = (
        f"# Tiny {family} question-answering test model (seed {seed})\n\n"
        f"{TEST_MODEL_NOTE}\n\n"
        f"Rebuild it with `python -m triton_qa.checkpoints {family} DIR --seed {seed}`.\n"
    )
    (output_dir / "README.md").write_text(text, encoding="utf-8")


def build_tiny_checkpoint(family: str, output_dir: Path, seed: int = 0) -> Path:
    """Build a tiny random-weight QA checkpoint and save it into ``output_dir``.

    The folder receives config.json, model.safetensors, tokenizer.json, the
    tokenizer's config and vocabulary files, and a README. The same family and
    seed give a byte-identical tokenizer.json and identical weights.
    Raises ValueError for a family other than roberta, bert or distilbert.
    """
    if family not in FAMILIES:
        raise ValueError(
            f"unsupported checkpoint family {family!r}: use one of {', '.join(FAMILIES)}"
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="triton-qa-tokenizer-") as work_dir:
        tokenizer = _build_tokenizer(family, Path(work_dir))
        # save_pretrained copies the vocabulary files, so it runs before cleanup.
        tokenizer.save_pretrained(str(output_dir))

    torch.manual_seed(seed)
    model = _build_model(family, tokenizer)
    _sharpen_qa_head(model)
    model.eval()
    model.save_pretrained(str(output_dir), safe_serialization=True)
    _write_readme(output_dir, family, seed)

    logger.info(
        "built tiny %s checkpoint in %s (vocabulary %d, seed %d)",
        family,
        output_dir,
        len(tokenizer),
        seed,
    )
    return output_dir


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m triton_qa.checkpoints",
        description="Build a deterministic tiny extractive-QA test checkpoint "
        "with random weights.",
    )
    parser.add_argument("family", choices=FAMILIES, help="model family to build")
    parser.add_argument("output_dir", type=Path, help="folder to save the checkpoint")
    parser.add_argument(
        "--seed", type=int, default=0, help="PyTorch seed for the weights (default 0)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    path = build_tiny_checkpoint(args.family, args.output_dir, seed=args.seed)
    print(json.dumps({"family": args.family, "path": str(path), "seed": args.seed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
