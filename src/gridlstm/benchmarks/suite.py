"""The benchmark suite (``python -m gridlstm.bench``): each part of
`gridlstm.benchmarks.backends` that the options ask for, the speed targets checked
(`gridlstm.benchmarks.targets`), the tables printed and the results written as JSON."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gridlstm.benchmarks import targets
from gridlstm.benchmarks.backends import (
    bench_grid2d,
    bench_grid3d,
    bench_mnist,
    bench_translation,
    bench_variants,
    native_steps,
    portable_build_info,
)
from gridlstm.benchmarks.preset_shapes import bench_presets
from gridlstm.nn.kernels.native import build as native_build
from gridlstm.run.conf import find_conf_dir

if TYPE_CHECKING:
    from rich.table import Table


def run(args: Any) -> dict:
    """Time everything ``args`` (the bench command's checked options,
    `gridlstm.bench.BenchConfig`) asks for; print the tables (and write ``args.json``)."""
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)

    results = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": args.dtype,
    }
    if native_steps(device):  # built (or loaded from the cache) here, before any timing
        results["native_build"] = portable_build_info(native_build.build_info())
    results["grid2d"] = bench_grid2d(args, device, dtype)
    if not args.skip_variants:
        results["variants"] = bench_variants(args, device, dtype)
    if not args.skip_grid3d:
        results["grid3d"] = bench_grid3d(args, device, dtype)
    if not args.skip_mnist:
        results["mnist"] = bench_mnist(args, device, dtype)
    if not args.skip_translation:
        results["translation"] = bench_translation(args, device, dtype)
    if args.presets:
        counts = tuple(int(c) for c in args.preset_threads.split(","))
        results["presets"] = bench_presets(find_conf_dir(), counts, args.repeats, args.warmup)
    results["targets"] = targets.check(results)
    print_results(results)
    if args.json:
        Path(args.json).expanduser().write_text(json.dumps(results, indent=2) + "\n")
    return results


def rate_table(title: str, rows: dict) -> Table:
    """The rows of `against_lstm` as a table; a "vs LSTMCell loop" column where any has it."""
    from rich.table import Table

    rows = {name: row for name, row in rows.items() if isinstance(row, dict)}
    peer = any("ratio_to_LSTMCell_loop" in row for row in rows.values())
    columns = ("model", "params", "tokens/s", "vs nn.LSTM") + (
        ("vs LSTMCell loop",) if peer else ()
    )
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != "model" else "left")
    for name, row in rows.items():
        cells = [name, f"{row['params']:,}", f"{row['tokens_per_s']:,.0f}"]
        cells.append(f"{row['ratio_to_nn.LSTM']:.2f}x")
        if peer:
            ratio = row.get("ratio_to_LSTMCell_loop")
            cells.append(f"{ratio:.2f}x" if ratio else "")
        table.add_row(*cells)
    return table


def preset_table(presets: dict) -> Table:
    """`gridlstm.benchmarks.preset_shapes` rows: ms per training step and grid / comparison."""
    from rich.table import Table

    counts = [key for key in next(iter(presets.values())) if key.endswith("_threads")]
    table = Table(title="CPU presets: training step (ms), grid vs an LSTM of its shape")
    columns = ["preset", "d", "L", "B", "T", "vs", "FLOPs"]
    for key in counts:
        columns += [f"{key.split('_')[0]}t: grid/vs", "ratio"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("preset", "vs") else "right")
    for name, row in presets.items():
        cells = [
            name,
            str(row["hidden"]),
            str(row["layers"]),
            str(row["batch"]),
            str(row["length"]),
            row["comparison"],
            f"{row['flop_ratio']:.2f}x",
        ]
        for key in counts:
            timed = row[key]
            cells += [
                f"{timed['grid_ms']:.1f}/{timed['comparison_ms']:.1f}",
                f"{timed['ratio']:.2f}x",
            ]
        table.add_row(*cells)
    return table


def print_results(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    g2 = results["grid2d"]
    console = Console()
    console.print(
        rate_table(
            f"2-LSTM fwd+bwd, d={g2['hidden']} L={g2['layers']} B={g2['batch']} "
            f"T={g2['length']} ({results['device']}, {results['threads']} threads, "
            f"{results['dtype']})",
            g2,
        )
    )
    if "variants" in results:
        title = "2-LSTM variants outside the LSTM kernel, same shape"
        console.print(rate_table(title, results["variants"]))
    if "mnist" in results:
        mnist = results["mnist"]
        console.print(
            f"MNIST preset 3-LSTM ({mnist['grid']}, {mnist['layers']} layers, d={mnist['hidden']}, "
            f"B={mnist['batch']}): {mnist['seconds']:.3f} s per fwd+bwd (hyperplane; per-op "
            f"steps {mnist['seconds_per_op_steps']:.3f} s)"
            + (
                f"; compiled {mnist['seconds_compiled']:.3f} s after "
                f"{mnist['compile_seconds']:.0f} s of compilation"
                if "seconds_compiled" in mnist
                else ""
            )
            + (
                f"; native steps {mnist['native_speedup']:.2f}x the PyTorch steps "
                f"({mnist['seconds_pytorch_steps']:.3f} s)"
                if "native_speedup" in mnist
                else ""
            )
            + (
                f"; fused Triton step {mnist['fused_speedup']:.2f}x the PyTorch steps "
                f"({mnist['seconds_pytorch_steps']:.3f} s)"
                if "fused_speedup" in mnist
                else ""
            )
            + (
                f"; CUDA graphs {mnist['seconds_cuda_graphs']:.3f} s"
                if "seconds_cuda_graphs" in mnist
                else ""
            )
        )
    if "grid3d" in results:
        g3 = results["grid3d"]
        console.print(
            f"3-LSTM {g3['grid']} x {g3['layers']} layers, d={g3['hidden']}, B={g3['batch']}: "
            f"hyperplane {g3['grid3d/hyperplane']['seconds']:.3f} s, naive "
            f"{g3['grid3d/naive']['seconds']:.3f} s per fwd+bwd -> "
            f"{g3['hyperplane_speedup']:.1f}x (per-op steps "
            f"{g3['grid3d/hyperplane, per-op steps']['seconds']:.3f} s, "
            f"{g3['per_op_speedup']:.1f}x"
            + (
                f"; PyTorch steps {g3['grid3d/hyperplane, pytorch steps']['seconds']:.3f} s, "
                f"{g3['pytorch_steps_speedup']:.1f}x"
                if "pytorch_steps_speedup" in g3
                else ""
            )
            + ")"
        )
    if "translation" in results:
        tr = results["translation"]
        table = Table(
            title=f"Translation, translation_cpu sizes: B={tr['batch']}, source {tr['src_len']} "
            f"/ target {tr['tgt_len']} tokens, vocab {tr['vocab']}"
        )
        for column in ("model", "d", "params", "train tok/s", "greedy sent/s", "beam-4 sent/s"):
            table.add_column(column, justify="right" if column != "model" else "left")
        for name in ("reencoder", "lstm_attention"):
            row = tr[name]
            table.add_row(
                name,
                str(row["hidden"]),
                f"{row['params']:,}",
                f"{row['train_tokens_per_s']:,.0f}",
                f"{row['greedy_sentences_per_s']:,.1f}",
                f"{row['beam4_sentences_per_s']:,.1f}",
            )
        console.print(table)
        if "reencoder_native_speedup" in tr:
            console.print(
                f"Reencoder training: native steps {tr['reencoder_native_speedup']:.2f}x the "
                "PyTorch steps"
            )
    if "presets" in results:
        console.print(preset_table(results["presets"]))
    if results.get("targets"):
        title = f"GPU targets ({results['device']}; baselines: H100 fp32, per-op design)"
        table = Table(title=title)
        for column in ("target", "measured", "goal", "met"):
            table.add_column(column, justify="left" if column == "target" else "right")
        for row in results["targets"]:
            measured = "not timed" if row["measured"] is None else f"{row['measured']:,.4g}"
            met = {None: "", True: "yes", False: "no"}[row["met"]]
            table.add_row(row["target"], measured, f"{row['goal']:,.4g}", met)
        console.print(table)
