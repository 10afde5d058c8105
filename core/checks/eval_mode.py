"""Stage 2, "eval mode is deterministic": two eval-mode passes of one batch agree exactly and change no state."""
from __future__ import annotations

import math
from typing import Any

import torch

from .common import first_batch, fmt, names_list, num, output_of
from .context import CheckContext
from .verdict import Verdict


def check(ctx: CheckContext) -> Verdict:
    model = ctx.new_model()
    x, _ = first_batch(ctx, ctx.exp.checks.batch_size)
    with torch.no_grad():
        model.train()
        output_of(model, x)  # one training forward, so that BatchNorm's running statistics are not at their init
        model.eval()
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        ctx.tick("eval-mode", 0, 2)
        a = output_of(model, x).detach().clone()
        ctx.tick("eval-mode", 1, 2)
        b = output_of(model, x).detach().clone()
    after = model.state_dict()
    changed = [k for k, v in before.items() if k in after and not torch.equal(v, after[k].detach())]
    still_training = [n or type(m).__name__ for n, m in model.named_modules() if m.training]
    diff = float((a.double() - b.double()).abs().max()) if a.shape == b.shape else float("inf")
    scale = float(a.double().abs().max()) if a.numel() else 0.0
    differ = not (diff <= 1e-6 * scale + 1e-12) if math.isfinite(diff) else not torch.equal(a, b)
    metrics: dict[str, Any] = {"max_abs_diff": num(diff), "output_scale": num(scale), "changed_state": changed[:50],
                               "modules_left_in_train_mode": still_training[:50]}
    problems, hints = [], []
    if not bool(torch.isfinite(a).all()):
        problems.append("the eval-mode outputs contain NaN/Inf")
        hints.append("Look for log(0), division by zero or a BatchNorm running variance that became NaN.")
    elif differ:
        problems.append(f"two eval-mode forward passes of the same batch differ by up to {fmt(diff)} "
                        f"(outputs up to {fmt(scale)})")
        hints.append("Something random is active in eval mode: F.dropout(x, training=True) or p=… without "
                     "training=self.training, noise added unconditionally, or a Dropout kept in a plain list instead of "
                     "an nn.ModuleList (model.eval() never reaches it).")
    if changed:
        problems.append(f"an eval pass changed the model's state: {names_list(changed)}")
        hints.append("Eval must not update BatchNorm statistics: F.batch_norm(..., training=True) or a module that "
                     "forces self.training; use the module's own training flag.")
    if still_training:
        problems.append(f"modules in train mode after model.eval() and a forward: {names_list(still_training)}")
        hints.append("A forward pass sets .train() on a submodule; remove that.")
    if problems:
        return Verdict("fail", "; ".join(problems) + ".", metrics, " ".join(hints))
    return Verdict("pass", f"two eval-mode passes of {len(x)} examples agree exactly and leave the model's "
                   f"{len(before)} state tensors unchanged.", metrics,
                   "In eval mode dropout is off and BatchNorm uses its running statistics.")
