"""Character-level language modelling with truncated BPTT, scored in bits per character.

Training: each batch is the next window of every stream (`gridlstm.data.text`); the
backbone's time state is carried from batch to batch and detached every step, and reset at
the start of every training epoch. Evaluation starts from a fresh state, carries it across
the whole split, and reports bits/char = mean cross-entropy in nats / ln 2 over every target
of the split (docs/model.md section 3), summed over ranks.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.trainer.states import TrainerFn
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor
from torchmetrics import MeanMetric

from gridlstm.data import contracts
from gridlstm.data.text import IGNORE, decode, encode
from gridlstm.nn import TokenSequenceModel, count_parameters, detach_state
from gridlstm.tasks.base import TaskModule
from gridlstm.tasks.showcase import should_show, show_table

log = logging.getLogger(__name__)
TASK = "language_model"  # marks checkpoints the sampler accepts


class LanguageModelModule(TaskModule):
    """Wraps a sequence backbone from `gridlstm.nn` as a next-token model.

    Args:
        net: the backbone's config (a plain dict with ``_target_``).
        vocab_size: symbols; vocab: the characters (None: bytes). Both are stored in
            checkpoints so the sampler needs nothing else.
        output_dropout: dropout on the backbone's output before the softmax head.
        sample_length: characters sampled after every validation (W&B table or console);
            0 turns it off.
        optimizer, scheduler: ``_partial_`` configs (see `TaskModule`).
    """

    DATA = contracts.Characters  # what its data module gives it (`module_kwargs`)

    def __init__(
        self,
        net: dict[str, Any],
        vocab_size: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        vocab: list[str] | None = None,
        output_dropout: float = 0.0,
        sample_length: int = 200,
    ) -> None:
        super().__init__()
        if vocab is not None and len(vocab) != vocab_size:  # e.g. an edited checkpoint
            raise ValueError(f"vocab holds {len(vocab)} symbols but vocab_size is {vocab_size}")
        self.save_hyperparameters()
        self.model = TokenSequenceModel(vocab_size, instantiate(net), dropout=output_dropout)
        self.num_parameters = count_parameters(self.model)
        self.val_nats, self.test_nats = MeanMetric(), MeanMetric()
        self.bptt_state: Any = None  # the time state carried across training batches
        self.eval_state: Any = None  # ... and across evaluation batches
        self.chars_trained, self.train_seconds = 0, 0.0
        self._step_start = 0.0
        self._resume_state: dict[str, Any] | None = None  # epoch, batch, states per rank

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        return self.model(tokens, state)

    # ------------------------------------------------------------------ training
    def on_train_epoch_start(self) -> None:
        self.bptt_state = None  # every epoch reads the streams from their beginning

    def on_train_batch_start(self, batch: Tensor, batch_idx: int) -> None:
        self._step_start = time.perf_counter()

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        if self._resume_state is not None:  # first step after a resume
            saved, self._resume_state = self._resume_state, None
            if (saved["epoch"], saved["batch"]) == (self.current_epoch, batch_idx):
                self.bptt_state = self._own_state(saved["states"])  # resumed mid-epoch
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits, state = self(inputs, self.bptt_state)
        self.bptt_state = detach_state(state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        self.count_samples(batch.shape[0])
        self.chars_trained += targets.numel() * self.trainer.world_size
        self.log_step("train/loss", loss, prog_bar=True)
        self.log_step("train/bpc", loss / math.log(2))
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Tensor, batch_idx: int) -> None:
        self.train_seconds += time.perf_counter() - self._step_start
        if self.train_seconds > 0:  # running mean over the fit, all ranks together
            self.log_step("train/chars_per_s", self.chars_trained / self.train_seconds)

    # ------------------------------------------------------------------ evaluation
    def on_validation_epoch_start(self) -> None:
        self.eval_state = None

    def on_test_epoch_start(self) -> None:
        self.eval_state = None

    def _evaluate(self, batch: tuple[Tensor, Tensor], nats: MeanMetric) -> None:
        inputs, targets = batch
        logits, self.eval_state = self(inputs, self.eval_state)
        losses = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
        )
        nats.update(losses[targets.reshape(-1) != IGNORE])

    def _log_split(self, split: str, nats: MeanMetric) -> None:
        mean = nats.compute()  # summed over every rank's targets
        # Equal on every rank already; sync_dist only silences Lightning's DDP advice.
        self.log(f"{split}/loss", mean, sync_dist=True)
        self.log(f"{split}/bpc", mean / math.log(2), prog_bar=True, sync_dist=True)
        nats.reset()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_nats)

    def on_validation_epoch_end(self) -> None:
        self._log_split("val", self.val_nats)
        if self.hparams.sample_length > 0 and should_show(self):
            self._show_sample()

    def _show_sample(self) -> None:
        """A sample (temperature 0.8, fixed seed) from the start of a line: what the model
        writes at this point of training."""
        vocab = self.hparams.vocab
        prime = "\n" if vocab is None or "\n" in vocab else vocab[0]
        tokens = torch.tensor([encode(prime, vocab)], device=self.device)
        generator = torch.Generator(self.device).manual_seed(0)
        ids = self.model.sample(tokens, self.hparams.sample_length, 0.8, None, generator)
        text = decode(ids[0].tolist(), vocab)
        show_table(self, "val/samples", ["step", "sample"], [[self.global_step, text]])

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_nats)

    def on_test_epoch_end(self) -> None:
        self._log_split("test", self.test_nats)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gridlstm_task"] = TASK
        # The carried state belongs to a place in the streams: a resume mid-epoch continues
        # with it, a resume at an epoch boundary starts the streams (and the state) afresh.
        if self._trainer is not None and self.trainer.state.fn == TrainerFn.FITTING:
            done = self.trainer.fit_loop.epoch_loop.batch_progress.current.completed
            checkpoint["bptt_states"] = {
                "epoch": self.current_epoch,
                "batch": int(done),
                "states": self._states_of_every_rank(),
            }

    def _states_of_every_rank(self) -> list[Any]:
        """The carried state of every rank, on the CPU, in rank order: each rank reads its
        own streams, so each carries its own state. A collective under DDP (Lightning dumps a
        checkpoint on every rank together and writes rank 0's)."""
        world = self.trainer.world_size
        if world == 1 or self.bptt_state is None:  # None on every rank alike (epoch start)
            return [apply_to_collection(self.bptt_state, Tensor, Tensor.cpu)] * world
        gathered = self.all_gather(self.bptt_state)  # a leading (world,) dimension
        return [
            apply_to_collection(gathered, Tensor, lambda t, r=rank: t[r].cpu())
            for rank in range(world)
        ]

    def _own_state(self, states: list[Any]) -> Any:
        """This rank's saved state on this module's device, or None (a fresh state) when the
        checkpoint came from another number of processes: the streams are cut by the total
        number of rows, so no saved state continues any of this run's streams."""
        world, rank = self.trainer.world_size, self.trainer.global_rank
        if len(states) != world:
            log.warning(
                "the checkpoint carries the BPTT state of %d process(es), this run has %d: the "
                "text streams are cut differently, so each starts from a fresh state",
                len(states),
                world,
            )
            return None
        return apply_to_collection(states[rank], Tensor, lambda t: t.to(self.device))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get("bptt_states")
        if saved is None and checkpoint.get("bptt_state") is not None:  # rank 0's only
            epoch, batch, state = checkpoint["bptt_state"]
            saved = {"epoch": epoch, "batch": batch, "states": [state]}
        self._resume_state = saved
