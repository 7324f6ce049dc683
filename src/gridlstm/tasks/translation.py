"""Translation: teacher-forced training, decoded evaluation scored with sacrebleu.

Every validation decodes the whole dev split (greedy by default, ``beam``), detokenises the
output (byte-level BPE is lossless) and scores it against the raw reference sentences with
sacrebleu's corpus BLEU (tokenizer ``13a``, or ``zh`` for a Chinese target) and chrF; the
test split is decoded with ``test_beam``. ``val/bleu`` is the main metric. The tokenizers
and the model config travel inside the checkpoint, so `gridlstm.translate` needs nothing
else; the model must be a `gridlstm.nn.Seq2Seq` (the checkpoint loader admits only the suite's
exported classes: a checkpoint is data, never code).
"""

from __future__ import annotations

import time
from typing import Any

import sacrebleu
import torch
import torch.nn.functional as F
from hydra.utils import get_class
from tokenizers import Tokenizer
from torch import Tensor
from torchmetrics import MeanMetric

import gridlstm.nn
from gridlstm.data import contracts
from gridlstm.data.translation import BOS, EOS, PAD, decode
from gridlstm.nn import count_parameters
from gridlstm.nn.models.decoding import decode as decode_ids
from gridlstm.nn.models.decoding import max_length
from gridlstm.nn.models.seq2seq import Seq2Seq
from gridlstm.tasks.base import TaskModule
from gridlstm.tasks.showcase import should_show, show_table

TASK = "translation"  # marks checkpoints that gridlstm.translate accepts


def bleu_tokenizer(lang: str) -> str:
    """sacrebleu's standard tokenizer for the target language."""
    return "zh" if lang.split("-")[0].lower() == "zh" else "13a"


def score(hypotheses: list[str], references: list[str], lang: str) -> dict[str, float]:
    """Corpus BLEU and chrF of detokenised text (sacrebleu)."""
    bleu = sacrebleu.corpus_bleu(hypotheses, [references], tokenize=bleu_tokenizer(lang))
    chrf = sacrebleu.corpus_chrf(hypotheses, [references])
    return {"bleu": bleu.score, "chrf": chrf.score}


def build_net(net: dict[str, Any], src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """The encoder-decoder named by ``net``: a `gridlstm.nn.Seq2Seq` of the suite."""
    options = dict(net)
    target = options.pop("_target_", None)
    try:
        cls = get_class(target) if str(target).startswith("gridlstm.") else None
    except (ImportError, ValueError, AttributeError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, Seq2Seq)):
        allowed = ", ".join(
            f"gridlstm.nn.{name}"
            for name in sorted(gridlstm.nn.__all__)
            if isinstance(c := getattr(gridlstm.nn, name), type)
            and issubclass(c, Seq2Seq)
            and c is not Seq2Seq
        )
        raise ValueError(f"model class {target!r} is not a translation model; allowed: {allowed}")
    return cls(src_vocab_size, tgt_vocab_size, **options)


class TranslationModule(TaskModule):
    """Args:
    net: the model config (``_target_`` a `gridlstm.nn.Seq2Seq`, plus its options; the
        top-level ``param_budget`` solves its width before it gets here).
    src_vocab_size, tgt_vocab_size, src_tokenizer, tgt_tokenizer, src_lang, tgt_lang: from
        the data module (tokenizers as JSON strings, stored in checkpoints).
    label_smoothing: of the training cross-entropy.
    beam, test_beam, length_penalty: decoding of the dev (every validation) and test sets.
    max_len_ratio, max_len_extra: decode at most ratio x source length + extra tokens.
    log_samples: translations shown per validation (W&B table, else the console log).
    """

    DATA = contracts.SentencePairs  # what its data module gives it (`module_kwargs`)

    def __init__(
        self,
        net: dict[str, Any],
        src_vocab_size: int,
        tgt_vocab_size: int,
        src_tokenizer: str,
        tgt_tokenizer: str,
        src_lang: str,
        tgt_lang: str,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        beam: int = 1,
        test_beam: int = 4,
        length_penalty: float = 1.0,
        max_len_ratio: float = 2.0,
        max_len_extra: int = 10,
        log_samples: int = 3,
    ) -> None:
        super().__init__()
        for name, value in (("beam", beam), ("test_beam", test_beam)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.save_hyperparameters()
        self.model = build_net(net, src_vocab_size, tgt_vocab_size)
        self.src_tok = Tokenizer.from_str(src_tokenizer)
        self.tgt_tok = Tokenizer.from_str(tgt_tokenizer)
        self.num_parameters = count_parameters(self.model)
        self.val_nats, self.test_nats = MeanMetric(), MeanMetric()
        self.outputs: list[tuple[int, str, str, str]] = []
        self.tokens_trained, self.train_seconds, self._step_start = 0, 0.0, 0.0

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        return self.model(src, src_lengths, tgt_in)

    def _loss(self, batch: dict[str, Any], smoothing: float = 0.0) -> tuple[Tensor, Tensor]:
        logits = self(batch["src"], batch["src_lengths"], batch["tgt_in"])
        target = batch["tgt_out"].reshape(-1)
        losses = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            target,
            ignore_index=PAD,
            reduction="none",
            label_smoothing=smoothing,
        )
        return losses, target != PAD

    # ------------------------------------------------------------------ training
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._step_start = time.perf_counter()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses, real = self._loss(batch, self.hparams.label_smoothing)
        loss = losses[real].mean()
        self.count_samples(batch["src"].shape[0])
        self.tokens_trained += int(real.sum()) * self.trainer.world_size
        self.log_step("train/loss", loss, prog_bar=True)
        self.log_step("train/ppl", lambda: torch.exp(loss.detach().clamp(max=50)))
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.train_seconds += time.perf_counter() - self._step_start
        if self.train_seconds > 0:  # target tokens per second, running mean over the fit
            self.log_step("train/tokens_per_s", self.tokens_trained / self.train_seconds)

    # ------------------------------------------------------------------ evaluation
    def translate_batch(self, src: Tensor, src_lengths: Tensor, beam: int) -> list[str]:
        limit = max_length(
            src_lengths, self.hparams.max_len_ratio, self.hparams.max_len_extra, 1000
        )
        ids = decode_ids(
            self.model, src, src_lengths, BOS, EOS, limit, beam, self.hparams.length_penalty
        )
        return [decode(self.tgt_tok, seq) for seq in ids]

    def _evaluate(self, batch: dict[str, Any], nats: MeanMetric, beam: int) -> None:
        losses, real = self._loss(batch)
        nats.update(losses[real])
        hypotheses = self.translate_batch(batch["src"], batch["src_lengths"], beam)
        for row, hyp in enumerate(hypotheses):
            length = int(batch["src_lengths"][row])
            source = decode(self.src_tok, batch["src"][row, :length].tolist())
            self.outputs.append((int(batch["index"][row]), source, hyp, batch["refs"][row]))

    def _gathered(self) -> list[tuple[int, str, str, str]]:
        """Every rank's (index, source, hypothesis, reference), in split order."""
        outputs = self.outputs
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, outputs)
            outputs = [item for part in parts for item in part]
        self.outputs = []
        return sorted(outputs)

    def _log_split(self, split: str, nats: MeanMetric) -> None:
        mean = nats.compute()
        nats.reset()
        outputs = self._gathered()
        scores = score([o[2] for o in outputs], [o[3] for o in outputs], self.hparams.tgt_lang)
        # Equal on every rank already; sync_dist only silences Lightning's DDP advice.
        self.log(f"{split}/loss", mean, sync_dist=True)
        self.log(f"{split}/ppl", torch.exp(mean.clamp(max=50)), sync_dist=True)
        self.log(f"{split}/bleu", scores["bleu"], prog_bar=True, sync_dist=True)
        self.log(f"{split}/chrf", scores["chrf"], sync_dist=True)
        if split == "val":
            self._show_samples(outputs[: self.hparams.log_samples])

    def _show_samples(self, samples: list[tuple[int, str, str, str]]) -> None:
        if samples and should_show(self):
            rows = [[self.global_step, src, hyp, ref] for _, src, hyp, ref in samples]
            show_table(self, "val/samples", ["step", "source", "output", "reference"], rows)

    def on_validation_epoch_start(self) -> None:
        self.outputs = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_nats, self.hparams.beam)

    def on_validation_epoch_end(self) -> None:
        self._log_split("val", self.val_nats)

    def on_test_epoch_start(self) -> None:
        self.outputs = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_nats, self.hparams.test_beam)

    def on_test_epoch_end(self) -> None:
        self._log_split("test", self.test_nats)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gridlstm_task"] = TASK
