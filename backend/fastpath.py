"""Training fast path: the same maths as plain HF training, less wasted work.

Two pieces, each exact (same loss and gradients up to float re-association),
measured in ``bench/train_cpu.py``:

``sdpa_varlen`` attention
    Padding-free packing (``DataCollatorWithFlattening``) puts a micro-batch in one
    row of ``T`` tokens.  With plain ``sdpa`` transformers then builds a dense
    ``T x T`` block-diagonal mask and the kernel computes every block, also the
    ones between different rows: the attention cost grows with the square of the
    *micro-batch* length, not of each row.  ``sdpa_varlen`` runs causal SDPA on each
    packed row separately (boundaries from ``cu_seq_lens_q`` or ``position_ids``),
    so no mask is built and no cross-row block is computed.  Anything else
    (padded batches, generation with a KV cache) falls through to stock ``sdpa``.

``FastPackingCollator``
    ``DataCollatorWithFlattening`` plus the sequence boundaries for the attention
    above, and *label-only logits*: ``logits_to_keep`` selects the positions that
    have a target (assistant tokens), ``shift_labels`` holds those targets.  The
    lm_head (49k x 576 for SmolLM2) and the cross-entropy then run only over
    trained tokens, not over prompts; the loss is the same token mean (the
    Trainer counts ``num_items_in_batch`` from ``shift_labels``).

``fast_lora_dropout``
    PEFT's LoRA dropout (``nn.Dropout`` on the input of every adapted layer, seven
    per decoder layer) spends most of its CPU time in ``bernoulli_``, which draws
    one Mersenne-Twister number per element, and in bool-tensor kernels, which
    torch does not vectorise on CPU.  On CPU tensors the replacement seeds numpy's
    SFC64 generator with one draw from torch's default generator (so seeding and
    checkpoint replay work as before), takes 64 random bits per two elements
    (``random_raw`` viewed as two uint32 lanes) and keeps an element when its lane
    is at least ``p * 2**32``: the same i.i.d. Bernoulli(1 - p) mask and
    1/(1 - p) scale (``p`` exact to 2**-32), a bool mask kept for the backward like
    ``F.dropout``, applied as a float multiply (``uint8 -> float`` is vectorised,
    ``bool -> float`` and ``where`` are not).  CUDA tensors keep ``F.dropout``.

``fuse_lora``
    PEFT's vanilla LoRA forward, ``base(x) + lora_B(lora_A(dropout(x))) * scaling``,
    passes over activation-sized tensors four times and keeps a dropped-out copy of
    ``x`` for the backward, in each of the seven adapted layers of a decoder block.
    The fused function scales the small ``tokens x r`` product instead, accumulates
    the LoRA product into the base output inside the matmul (``addmm_``), keeps a
    bool mask and rebuilds the masked input in the backward: ~8 % per training step
    on CPU, less activation memory everywhere.  Same sums up to float re-association;
    anything but plain LoRA on a frozen ``nn.Linear`` keeps PEFT's forward.

``enable_fused_ce``
    With label-only batches, a chunked "fused linear cross-entropy" replaces the
    lm_head + loss: never more than ~32M logits alive (HF keeps tokens x 49k
    logits, their fp32 copy, the log-softmax and its gradient), the lm_head
    gradient computed chunk by chunk in the forward.  Same sums, same dtypes.

Wiring (``backend/training.py``, in ``_train_once`` after ``apply_method``)::

    from backend import fastpath
    fastpath.fuse_lora(model)                   # any LoRA run, packed or not
    fastpath.enable(model)                      # sdpa -> sdpa_varlen; idempotent
    fastpath.fast_lora_dropout(model)           # CPU only has an effect
    collator = fastpath.FastPackingCollator()   # instead of DataCollatorWithFlattening
    loss_func = fastpath.enable_fused_ce(model) # then Trainer(..., compute_loss_func=loss_func)

This module imports torch/transformers lazily (no cost at ``import backend``).
"""

from __future__ import annotations

from typing import Any, Callable

ATTN_NAME = "sdpa_varlen"
_registered = False


# ---------------------------------------------------------------------------
# attention

def _segments(kwargs: dict, q_len: int) -> list[int] | None:
    """Row boundaries ``[0, e1, e2, ..., T]`` of a packed batch of one, or None."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None:
        b = [int(x) for x in (cu.tolist() if hasattr(cu, "tolist") else cu)]
        return b if b and b[-1] == q_len else None
    pos = kwargs.get("position_ids")
    if pos is None or pos.shape[0] != 1 or pos.shape[-1] != q_len:
        return None
    starts = (pos[0] == 0).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:
        return None
    return starts + [q_len]


def sdpa_varlen_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                          scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any):
    """Causal SDPA per packed row; stock ``sdpa`` for everything else.

    Shapes follow transformers' attention interface: ``query`` is
    ``(batch, heads, q_len, head_dim)``; returns ``(batch, q_len, heads, head_dim), None``.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q_len, kv_len = query.shape[2], key.shape[2]
    packed = (attention_mask is None and query.shape[0] == 1 and q_len == kv_len and q_len > 1
              and getattr(module, "is_causal", True) and is_causal is not False
              and kwargs.get("position_bias") is None)
    gqa = query.shape[1] != key.shape[1]
    if (packed and query.is_cuda and query.dtype in _HALF and not dropout
            and torch.is_tensor(kwargs.get("cu_seq_lens_q"))):
        out = _cuda_varlen(query, key, value, kwargs, scaling, gqa)  # no host sync
        if out is not None:
            return out, None
    if packed and query.is_cuda and cuda_mode == "mask" and torch.is_tensor(kwargs.get("cu_seq_lens_q")):
        return _masked_attention(query, key, value, kwargs["cu_seq_lens_q"], scaling, dropout), None
    bounds = _segments(kwargs, q_len) if packed else None
    if bounds is None or len(bounds) < 2:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    outs = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e <= s:
            continue
        outs.append(torch.nn.functional.scaled_dot_product_attention(
            query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], dropout_p=dropout, scale=scaling,
            is_causal=e - s > 1, enable_gqa=gqa))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out.transpose(1, 2).contiguous(), None


_HALF: tuple = ()
_cuda_varlen_ok = False  # opt-in: enable(model, cuda_varlen=True)
# How packed rows attend on CUDA when FlashAttention-varlen is off: "rows" (one SDPA call per
# row, as on the CPU) or "mask" (one SDPA call per layer with a block-diagonal causal mask).
# "mask" is the default: on an H200, 1.45x the rows loop's tokens/s (many small kernels and a
# host sync per layer) for 1.2x its memory (bench/gpu_check.py, docs/architecture.md).
cuda_mode = "mask"
_mask_cache: tuple = (None, None)  # (the batch's cu_seq_lens tensor, its mask): built once per batch


def _masked_attention(query, key, value, cu, scaling, dropout: float = 0.0):
    """Packed rows in one SDPA call with a block-diagonal causal mask; ``(1, T, heads, head_dim)``."""
    import torch
    mask = _block_causal_mask(cu, query.shape[2], query.device)  # no host sync
    if query.shape[1] != key.shape[1]:  # expanded heads keep SDPA on its memory-efficient kernel
        rep = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout,
                                                           scale=scaling)
    return out.transpose(1, 2).contiguous()


def _block_causal_mask(cu, q_len: int, device):
    """``(1, 1, T, T)`` bool: position i attends to j when both are in the same packed row and j <= i."""
    global _mask_cache
    if _mask_cache[0] is cu:
        return _mask_cache[1]
    import torch
    pos = torch.arange(q_len, device=device)
    row = torch.searchsorted(cu.to(device=device)[1:].contiguous(), pos, right=True)
    mask = ((row[:, None] == row[None, :]) & (pos[:, None] >= pos[None, :]))[None, None]
    _mask_cache = (cu, mask)
    return mask


def _cuda_varlen(query, key, value, kwargs, scaling, gqa):
    """One ``torch.nn.attention.varlen.varlen_attn`` call (FlashAttention varlen) on CUDA, or None."""
    global _cuda_varlen_ok
    if not _cuda_varlen_ok:
        return None
    import torch
    try:
        from torch.nn.attention.varlen import varlen_attn

        cu = kwargs["cu_seq_lens_q"].to(device=query.device, dtype=torch.int32)
        max_len = int(kwargs.get("max_length_q") or query.shape[2])
        q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (T, heads, head_dim)
        out = varlen_attn(q, k, v, cu, cu, max_len, max_len, scale=scaling, window_size=(-1, 0),
                          enable_gqa=gqa)
        return out.unsqueeze(0)  # (1, T, heads, head_dim)
    except Exception:  # no kernel for this GPU / build: use the per-row SDPA loop from now on
        _cuda_varlen_ok = False
        return None


def _varlen_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, mask_function=None,
                 attention_mask=None, **kwargs):
    """No mask for a cache-free, unpadded batch (the attention handles rows); else stock sdpa's."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    if attention_mask is None and q_length == kv_length and not q_offset and not kv_offset:
        return None
    return sdpa_mask(batch_size, q_length, kv_length, q_offset, kv_offset,
                     mask_function=mask_function or causal_mask_function, attention_mask=attention_mask,
                     **kwargs)


def register() -> str:
    """Register ``sdpa_varlen`` with transformers (idempotent); returns its name."""
    global _registered, _HALF
    if not _registered:
        import torch
        from transformers import AttentionInterface

        _HALF = (torch.float16, torch.bfloat16)
        from transformers.masking_utils import AttentionMaskInterface

        AttentionInterface.register(ATTN_NAME, sdpa_varlen_attention)
        AttentionMaskInterface.register(ATTN_NAME, _varlen_mask)
        _registered = True
    return ATTN_NAME


def _base(model):
    """The transformers model inside PEFT / DDP / compile wrappers."""
    m = model
    for attr in ("module", "_orig_mod"):
        m = getattr(m, attr, m)
    if hasattr(m, "get_base_model"):
        m = m.get_base_model()
    return m


def enable(model, *, cuda_varlen: bool = False) -> bool:
    """Switch a causal LM (PEFT-wrapped or not) from ``sdpa`` to ``sdpa_varlen``.

    ``cuda_varlen`` additionally uses one FlashAttention-varlen call per layer
    (``torch.nn.attention.varlen``) for bf16/fp16 CUDA tensors instead of one SDPA
    call per packed row; off by default until it has been benchmarked on a GPU
    (``bench.train_cpu --cuda`` runs it as ``ours_cuda_varlen``).

    Returns False (and changes nothing) when the model does not use ``sdpa``, or is a
    PEFT prompt-learning model (prompt / prefix tuning add virtual tokens, so packed row
    boundaries and label-only positions would not line up).
    """
    global _cuda_varlen_ok
    outer = model
    for attr in ("module", "_orig_mod"):
        outer = getattr(outer, attr, outer)
    pcfg = getattr(outer, "peft_config", None)
    if isinstance(pcfg, dict) and any(getattr(c, "is_prompt_learning", False) for c in pcfg.values()):
        return False
    base = _base(model)
    cfg = getattr(base, "config", None)
    if cfg is None or getattr(cfg, "_attn_implementation", None) not in ("sdpa", ATTN_NAME):
        return False
    register()
    _cuda_varlen_ok = bool(cuda_varlen)
    if hasattr(base, "set_attn_implementation"):
        base.set_attn_implementation(ATTN_NAME)
    else:  # pragma: no cover - older transformers
        cfg._attn_implementation = ATTN_NAME
    return True


def disable(model) -> None:
    """Back to stock ``sdpa`` (e.g. before generation or export; not required for saving)."""
    base = _base(model)
    if getattr(base.config, "_attn_implementation", None) == ATTN_NAME:
        base.set_attn_implementation("sdpa")


# ---------------------------------------------------------------------------
# LoRA dropout

_dropout_cls = None


def _fast_dropout_class():
    """``FastDropout`` (an ``nn.Dropout`` subclass, so PEFT's isinstance checks hold)."""
    global _dropout_cls
    if _dropout_cls is not None:
        return _dropout_cls
    import torch

    class _MaskScale(torch.autograd.Function):
        """``x * keep / (1 - p)`` with a bool mask saved (1 byte per element, like ``F.dropout``)."""

        @staticmethod
        def forward(ctx, x, keep, scale):
            ctx.save_for_backward(keep)
            ctx.scale = scale
            return x * _mask_values(keep, x.dtype, scale)

        @staticmethod
        def backward(ctx, grad):
            (keep,) = ctx.saved_tensors
            return grad * _mask_values(keep, grad.dtype, ctx.scale), None, None

    class FastDropout(torch.nn.Dropout):
        """Dropout whose CPU mask comes from 64-bit SFC64 draws (two elements each)."""

        def forward(self, x):
            p = self.p
            if not self.training or p <= 0.0:
                return x
            if x.device.type != "cpu" or p >= 1.0 or self.inplace:
                return torch.nn.functional.dropout(x, p, True, self.inplace)
            return _MaskScale.apply(x, _keep_mask(x, p), 1.0 / (1.0 - p))

    _dropout_cls = FastDropout
    return FastDropout


def fast_lora_dropout(model) -> int:
    """Swap every ``nn.Dropout`` inside LoRA layers for ``FastDropout`` (same p); returns how many."""
    import torch

    cls = _fast_dropout_class()
    n = 0
    for module in model.modules():
        drops = getattr(module, "lora_dropout", None)
        if not isinstance(drops, torch.nn.ModuleDict):
            continue
        for key, d in list(drops.items()):
            if type(d) is torch.nn.Dropout and d.p > 0:
                drops[key] = cls(d.p, d.inplace)
                n += 1
    return n


# ---------------------------------------------------------------------------
# fused LoRA linear

_lora_fn = None
_lora_classes: dict = {}


def _keep_mask(x2, p: float):
    """Bool keep-mask, i.i.d. Bernoulli(1 - p), seeded from the default generator (so checkpointing replays it)."""
    import torch

    if x2.device.type == "cpu":  # 64 SFC64 bits per two elements (see FastDropout)
        import numpy as np

        n = x2.numel()
        seed = int(torch.empty((), dtype=torch.int64).random_())
        lanes = np.random.SFC64(seed).random_raw((n + 1) // 2).view(np.uint32)[:n]
        # lanes are uniform on [0, 2**32): drop when below p * 2**32
        keep = lanes >= np.uint32(min(int(round(p * 2**32)), 2**32 - 1))
        return torch.from_numpy(keep).view(x2.shape)
    return torch.rand(x2.shape, device=x2.device, dtype=torch.float32) >= p


def _mask_values(keep, dtype, scale: float = 1.0):
    """``keep`` as 0 / ``scale`` values of ``dtype`` (via uint8: torch's bool kernels are scalar on CPU)."""
    import torch

    m = keep.view(torch.uint8).to(dtype)
    return m.mul_(scale) if scale != 1.0 else m


def _lora_linear_fn():
    global _lora_fn
    if _lora_fn is not None:
        return _lora_fn
    import torch

    class LoraLinear(torch.autograd.Function):
        """``x W^T + b + s * B(A(dropout_p(x)))`` for a frozen ``W``, in as few passes as possible.

        PEFT's vanilla LoRA forward makes the dropped-out copy of ``x`` (kept for the
        backward), the ``tokens x out`` LoRA output, its ``* scaling`` copy and the sum:
        four passes over activation-sized tensors and one more saved copy of ``x`` per
        adapted layer.  Here the scale ``s / (1 - p)`` is applied to the ``tokens x r``
        product, the LoRA product is accumulated into the base output by the matmul
        itself (``addmm_``), only a bool mask is kept, and the masked input is rebuilt in
        the backward.  Same sums up to float re-association; the mask has PEFT's
        distribution (i.i.d. keep with probability ``1 - p``).
        """

        @staticmethod
        def forward(ctx, x, weight, bias, lora_a, lora_b, scaling, p):
            shape = x.shape
            x2 = x.reshape(-1, shape[-1])
            out = torch.nn.functional.linear(x2, weight, bias)
            keep = _keep_mask(x2, p) if p > 0 else None
            xm = x2 * _mask_values(keep, x2.dtype) if keep is not None else x2
            c = scaling / (1.0 - p)
            hs = (xm @ lora_a.t()).mul_(c)           # tokens x r: scaling * lora_A(dropout(x))
            out.addmm_(hs, lora_b.t())                # += scaling * lora_B(lora_A(dropout(x)))
            ctx.save_for_backward(x2, keep, hs, weight, lora_a, lora_b)
            ctx.c, ctx.shape = c, shape
            return out.view(*shape[:-1], out.shape[-1])

        @staticmethod
        def backward(ctx, grad):
            x2, keep, hs, weight, lora_a, lora_b = ctx.saved_tensors
            g = grad.reshape(-1, grad.shape[-1])
            need_x, _, _, need_a, need_b = ctx.needs_input_grad[:5]
            dx = da = db = None
            dh = (g @ lora_b).mul_(ctx.c)             # d(xm @ A^T)
            m = _mask_values(keep, x2.dtype) if keep is not None and (need_a or need_x) else None
            if need_b:
                db = g.t() @ hs
            if need_a:
                da = dh.t() @ (x2 * m if m is not None else x2)
            if need_x:
                dx = g @ weight
                if m is None:
                    dx.addmm_(dh, lora_a)
                else:
                    dx.addcmul_(dh @ lora_a, m)
                dx = dx.view(ctx.shape)
            return dx, None, None, da, db, None, None

    _lora_fn = LoraLinear
    return LoraLinear


def _fused_lora_forward(self, x, *args, **kwargs):
    """``lora.Linear.forward`` with :class:`LoraLinear` for the plain training case, PEFT's otherwise."""
    import torch

    base = self.base_layer
    if (args or kwargs or self.disable_adapters or self.merged or not torch.is_grad_enabled()
            or len(self.active_adapters) != 1 or torch.is_autocast_enabled(x.device.type)):
        return super(type(self), self).forward(x, *args, **kwargs)
    name = self.active_adapters[0]
    if name not in self.lora_A or name in getattr(self, "lora_variant", {}):
        return super(type(self), self).forward(x, *args, **kwargs)
    a, b = self.lora_A[name], self.lora_B[name]
    drop = self.lora_dropout[name]
    p = float(drop.p) if isinstance(drop, torch.nn.Dropout) and drop.training else 0.0
    w = base.weight
    if (type(base) is not torch.nn.Linear or w.requires_grad or (base.bias is not None and base.bias.requires_grad)
            or type(a) is not torch.nn.Linear or type(b) is not torch.nn.Linear or a.bias is not None
            or b.bias is not None or not (a.weight.requires_grad and b.weight.requires_grad)
            or not (x.dtype == w.dtype == a.weight.dtype == b.weight.dtype) or p >= 1.0):
        return super(type(self), self).forward(x, *args, **kwargs)
    return _lora_linear_fn().apply(x, w, base.bias, a.weight, b.weight, float(self.scaling[name]), p)


def fuse_lora(model) -> int:
    """Give every vanilla PEFT ``lora.Linear`` the fused training forward; returns how many.

    The module keeps its parameters, state dict and ``isinstance`` (its class becomes a
    subclass that only overrides ``forward``); anything unusual (DoRA, merged or disabled
    adapters, several active adapters, quantised or trainable base weights, no grad)
    still runs PEFT's own forward, and so does anything under autocast (mixed dtypes inside
    the in-place matmul).  :func:`unfuse_lora` undoes it.
    """
    try:
        from peft.tuners.lora.layer import Linear as LoraLinearModule
    except ImportError:  # pragma: no cover - peft is a dependency
        return 0
    n = 0
    for m in model.modules():
        cls = type(m)
        if cls is not LoraLinearModule:
            continue
        sub = _lora_classes.get(cls)
        if sub is None:
            sub = type("Fused" + cls.__name__, (cls,), {"forward": _fused_lora_forward, "_tune_fused_from": cls})
            _lora_classes[cls] = sub
        m.__class__ = sub
        n += 1
    return n


def unfuse_lora(model) -> int:
    """Back to PEFT's own ``lora.Linear`` forward; returns how many modules changed."""
    n = 0
    for m in model.modules():
        orig = type(m).__dict__.get("_tune_fused_from")
        if orig is not None:
            m.__class__ = orig
            n += 1
    return n


# ---------------------------------------------------------------------------
# fused (chunked) linear cross-entropy

_fused_fn = None


def _fused_linear_ce_fn():
    """The autograd function (built lazily: torch is imported on first use)."""
    global _fused_fn
    if _fused_fn is not None:
        return _fused_fn
    import torch

    class FusedLinearCrossEntropy(torch.autograd.Function):
        """``sum CE(h @ W.T, targets)`` in row chunks; gradients computed in the forward.

        Never holds more than ``chunk x vocab`` logits (HF's path keeps the
        ``tokens x vocab`` logits, their fp32 copy, log-softmax and its gradient).
        Same arithmetic as HF: logits in the weights' dtype, softmax in fp32,
        the logits gradient cast back to the weights' dtype before the matmul.
        The log-sum-exp is ``torch.logsumexp``'s (max + log of the shifted sum),
        computed in place: five passes over the chunk instead of nine and no
        second ``chunk x vocab`` tensor.  With a ``workspace`` dict the logits buffer
        is kept there and reused by the next call (on CPU a fresh 100 MB tensor costs
        more in page faults than the pass that fills it).
        """

        @staticmethod
        def forward(ctx, h, weight, targets, chunk, workspace):
            need_h, need_w = h.requires_grad, weight.requires_grad
            grad_h = torch.empty_like(h) if need_h else None
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            rows = min(chunk, h.shape[0])
            buf = None
            # out= matmuls only for one dtype without autocast (out= would bypass autocast's casts)
            plain = h.dtype == weight.dtype and not torch.is_autocast_enabled(h.device.type)
            if workspace is not None and plain:
                buf = workspace.get("logits")
                shape = (rows, weight.shape[0])
                if (buf is None or buf.shape[0] < rows or buf.shape[1] != shape[1] or buf.dtype != weight.dtype
                        or buf.device != weight.device):
                    buf = workspace["logits"] = torch.empty(shape, dtype=weight.dtype, device=weight.device)
            for s in range(0, h.shape[0], chunk):
                hc, tc = h[s:s + chunk], targets[s:s + chunk]
                logits = torch.mm(hc, weight.t(), out=buf[:len(tc)]) if buf is not None else hc @ weight.t()
                logits = logits.float()
                valid = tc != -100
                safe = tc.clamp(min=0)
                picked = logits.gather(1, safe[:, None]).squeeze(1)
                peak = logits.amax(dim=-1, keepdim=True)
                peak.masked_fill_(~torch.isfinite(peak), 0.0)          # as torch.logsumexp does
                sums = logits.sub_(peak).exp_().sum(dim=-1)           # logits now hold exp(x - max)
                lse = peak.squeeze(1) + sums.log()
                total += ((lse - picked) * valid).sum()
                if need_h or need_w:
                    logits.mul_((valid / sums)[:, None])               # softmax, zero for ignored rows
                    logits[torch.arange(len(tc), device=tc.device), safe] -= valid.to(logits.dtype)
                    g = logits.to(h.dtype)
                    if need_h and plain:
                        torch.mm(g, weight, out=grad_h[s:s + chunk])
                    elif need_h:
                        grad_h[s:s + chunk] = g @ weight
                    if need_w:
                        grad_w += (g.t() @ hc).float()
            ctx.save_for_backward(*(t for t in (grad_h, grad_w) if t is not None))
            ctx.need = (need_h, need_w)
            ctx.w_dtype = weight.dtype
            return total

        @staticmethod
        def backward(ctx, grad_out):
            saved = list(ctx.saved_tensors)
            need_h, need_w = ctx.need
            gh = saved.pop(0) * grad_out if need_h else None   # a 0-dim scale keeps h's dtype
            gw = (saved.pop(0) * grad_out).to(ctx.w_dtype) if need_w else None
            return gh, gw, None, None, None

    _fused_fn = FusedLinearCrossEntropy
    return FusedLinearCrossEntropy


def fused_linear_cross_entropy(h, weight, targets, chunk: int | None = None, workspace: dict | None = None):
    """Summed causal-LM cross-entropy of ``h @ weight.T`` against ``targets`` (-100 ignored).

    ``workspace``: a dict the caller keeps between calls (one per training run) to reuse the logits buffer.
    """
    if chunk is None:
        chunk = max(64, (1 << 25) // max(int(weight.shape[0]), 1))  # ~32M logits per chunk
    return _fused_linear_ce_fn().apply(h, weight, targets, int(chunk), workspace)


class _HeadInputStash:
    """Forward pre-hook on the output layer: in training, keep its (selected) input, project one row only."""

    def __init__(self):
        self.hidden = None

    def __call__(self, module, args):
        import torch

        x = args[0]
        # Only the label-only path gives the head a 2-D (tokens, hidden) input (logits_to_keep as a mask).
        if module.training and torch.is_grad_enabled() and x.dim() == 2 and x.shape[0] > 1:
            self.hidden = x
            return (x[:1],) + tuple(args[1:])
        return None


def enable_fused_ce(model) -> Callable:
    """Fused chunked cross-entropy for training with :class:`FastPackingCollator` batches.

    Installs a pre-hook on the output layer (lm_head) and returns the loss function to give the
    Trainer as ``compute_loss_func``.  Eval and anything without label-only batches use the logits
    as usual.  Same loss and gradients as HF's ``ForCausalLMLoss`` (token sum / ``num_items_in_batch``).
    """
    base = _base(model)
    head = base.get_output_embeddings()
    stash = getattr(head, "_tune_stash", None)
    if stash is None:
        stash = _HeadInputStash()
        head.register_forward_pre_hook(stash)
        head._tune_stash = stash

    workspace: dict = {}  # the logits buffer, reused from step to step while this loss function lives

    def loss_func(outputs, labels, num_items_in_batch=None):
        import torch

        shifted = torch.full_like(labels, -100)
        shifted[..., :-1] = labels[..., 1:]
        h, stash.hidden = stash.hidden, None
        if h is not None:
            targets = shifted[shifted != -100]
            total = fused_linear_cross_entropy(h, head.weight, targets, workspace=workspace)
            n = targets.numel()
        else:
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
            logits = logits.float()
            if logits.dim() == 2:  # label-only logits (eval with a FastPackingCollator batch)
                targets = shifted[shifted != -100]
            else:
                targets = shifted
                logits = logits.reshape(-1, logits.shape[-1])
            total = torch.nn.functional.cross_entropy(logits, targets.reshape(-1).to(logits.device),
                                                      ignore_index=-100, reduction="sum")
            n = int((targets != -100).sum())
        if num_items_in_batch is not None:
            if torch.is_tensor(num_items_in_batch):
                num_items_in_batch = num_items_in_batch.to(total.device)
            return total / num_items_in_batch
        return total / max(n, 1)

    return loss_func


# ---------------------------------------------------------------------------
# collator

class FastPackingCollator:
    """Padding-free packing with row boundaries and label-only logits.

    Parameters
    ----------
    label_only_logits
        Add ``logits_to_keep`` (positions with a target) and ``shift_labels``
        (their targets) so the lm_head and the loss skip prompt tokens.
    """

    def __init__(self, label_only_logits: bool = True):
        from transformers import DataCollatorWithFlattening

        self.label_only_logits = label_only_logits
        self._flat = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100,
                                                return_flash_attn_kwargs=True)

    def __call__(self, features: list[dict]) -> dict:
        import torch

        feats = [{"input_ids": f["input_ids"], "labels": f["labels"]} if "labels" in f
                 else {"input_ids": f["input_ids"]} for f in features]
        batch = self._flat(feats)
        # cu_seq_lens as int32 tensors (what flash-attention expects); max lengths stay ints.
        if self.label_only_logits:
            labels = batch["labels"]
            shifted = torch.full_like(labels, -100)
            shifted[:, :-1] = labels[:, 1:]
            keep = shifted != -100
            if not bool(keep.any()):  # keep one position so the graph stays valid
                keep[0, 0] = True
            batch["logits_to_keep"] = keep
            batch["shift_labels"] = shifted[keep].unsqueeze(0)
        return batch
