"""Bidirectional LSTM that is exact on padded batches.

One set of weights, in the layout of `keras.layers.LSTM` (kernel (in, 4u),
recurrent_kernel (u, 4u), bias (4u), gates in i, f, c, o order), so weights
move freely to and from `keras.layers.Bidirectional(keras.layers.LSTM(...))`.
Two computation paths run the same math on them:

* fused: the backend's LSTM kernel, dispatched as `keras.layers.LSTM` does it:
  cuDNN on GPU (TensorFlow, JAX, torch), otherwise Keras's generic recurrent
  loop. Cannot apply layer normalization or a projection.
* explicit: gate by gate in `keras.ops`. One matmul projects every frame of
  both directions; the loop then runs the two directions side by side as one
  batch, leaving a single recurrent matmul per step. It supports layer
  normalization and projection, and on CPU it trains about twice as fast as
  Keras's generic loop (scripts/bench_layers.py).

`implementation="auto"` takes the fused path when a cuDNN kernel can run it and
the explicit path otherwise (CPU, layer normalization, projection).

Padding: masks are (batch, time) booleans of right-padded sequences, read as
lengths (count of True per row). The backward direction reverses each sequence
within its own length, so in both directions the padding trails the real
frames; an LSTM is causal, so the loop needs no masking for the outputs, which
are zeroed at padded steps afterwards. Final states (`return_state`) are taken
at each sequence's true last step by passing the mask into the loop (where
TensorFlow's cuDNN kernel then rejects rows with no frames at all).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from asr import keras_compat  # no public API reaches the LSTM kernels and RNN loop
from asr.sequences import reduce_lengths, reduce_mask, reverse_within_lengths, stack_frames

IMPLEMENTATIONS = ("auto", "fused", "explicit")
MERGE_MODES = ("concat", "sum")
LAYER_NORM_EPSILON = 1e-5


def _layer_norm(x):
    mean, variance = ops.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * ops.rsqrt(variance + LAYER_NORM_EPSILON)


def _stack(variables):
    # Direction-major copy of per-direction weights for the explicit path's batched matmuls.
    return ops.stack([variable.value for variable in variables])


def _fused_lstm(inputs, mask, kernel, recurrent_kernel, bias):
    """One forward LSTM as keras.layers.LSTM runs it: the backend's cuDNN kernel, else its generic loop.

    inputs: (batch, time, in). Returns outputs (batch, time, units) and [h, c].
    """
    zeros = ops.zeros((ops.shape(inputs)[0], recurrent_kernel.shape[0]), dtype=inputs.dtype)
    try:
        return keras_compat.fused_lstm(inputs, zeros, zeros, mask, kernel, recurrent_kernel, bias)
    except NotImplementedError:  # raised where the backend has no kernel for this device or mask
        pass

    def step(x_t, state):  # keras.layers.LSTMCell's math
        h, c = state
        gates = ops.matmul(x_t, kernel) + ops.matmul(h, recurrent_kernel) + bias
        i, f, g, o = ops.split(gates, 4, axis=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, [h, c]

    return keras_compat.rnn(step, inputs, [zeros, zeros], mask=mask)


@keras.saving.register_keras_serializable(package="asr")
class BidirectionalLSTM(keras.layers.Layer):
    """Bidirectional LSTM over padded batches, with optional projection, layer norm and time reduction.

    Per direction, with x_t the input frame and r_{t-1} the recurrent state:

        i_t = σ(W_i x_t + R_i r_{t-1} + b_i)      f_t = σ(W_f x_t + R_f r_{t-1} + b_f)
        g_t = tanh(W_c x_t + R_c r_{t-1} + b_c)   o_t = σ(W_o x_t + R_o r_{t-1} + b_o)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)
        r_t = W_p h_t with a projection (LSTMP, Sak et al. 2014), else r_t = h_t

    r_t is the output at step t. b_f starts at 1 (unit forget bias). With
    `layer_norm` (Ba et al. 2016, eq. 20-22) the input and recurrent terms are
    layer-normalised separately over all 4·units gate pre-activations (each with its
    own gain; b stays the only bias), and the cell is layer-normalised before the
    output tanh, h_t = o_t ⊙ tanh(LN(c_t)); the carried c_t is not.

    The backward direction runs over each sequence reversed within its true
    length, never over padding; outputs at padded steps are zero.

    Weights `kernel`, `recurrent_kernel`, `bias` (and `projection_kernel`, the
    layer-norm gains) are [forward, backward] pairs. Without projection or layer
    norm, `get_weights()` matches `keras.layers.Bidirectional(keras.layers.LSTM(units))`
    in shapes and order, so `set_weights` moves weights either way.

    Args:
        units: LSTM cell size u.
        merge_mode: "concat" (features 2p) or "sum" (features p) of the two directions,
            p = projection_units or units.
        dropout: fraction of input features dropped in training; one mask per
            sequence and direction, shared by all time steps, as in `keras.layers.LSTM`.
        projection_units: size p of the recurrent projection; None for a plain LSTM.
        layer_norm: layer-normalise gate pre-activations and cell (explicit path only).
        time_reduction: stack this many adjacent frames before the LSTM.
        return_state: also return [h_fwd, c_fwd, h_bwd, c_bwd] at each sequence's
            last true step (for the backward direction: after reading frame 0).
        implementation: "fused", "explicit", or "auto" (see module docstring).
        kernel_initializer, recurrent_initializer: for W and R (and W_p).
        seed: dropout seed.

    Call arguments:
        inputs: (batch, time, features).
        mask: optional (batch, time) bool, True on real frames, right-padded.
            Filled in by Keras's mask propagation when the input carries one.
        training: enables dropout.

    Returns:
        (batch, ceil(time / time_reduction), 2p or p); with `return_state` also
        the four states, h of shape (batch, p) and c of shape (batch, units).
        `compute_mask(inputs, mask)` gives the output mask, so stacks thread it:
        `x, mask = layer(x, mask=mask), layer.compute_mask(x, mask)`.
    """

    def __init__(
        self,
        units: int,
        merge_mode: str = "concat",
        dropout: float = 0.0,
        projection_units: int | None = None,
        layer_norm: bool = False,
        time_reduction: int = 1,
        return_state: bool = False,
        implementation: str = "auto",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not (isinstance(units, int) and units > 0):
            raise ValueError(f"units must be a positive integer, got {units!r}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if projection_units is not None and not (isinstance(projection_units, int) and projection_units > 0):
            raise ValueError(f"projection_units must be None or a positive integer, got {projection_units!r}")
        if not (isinstance(time_reduction, int) and time_reduction >= 1):
            raise ValueError(f"time_reduction must be an integer >= 1, got {time_reduction!r}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
        explicit_only = layer_norm or projection_units is not None
        if implementation == "fused" and explicit_only:
            raise ValueError("implementation='fused' cannot apply layer_norm or projection_units; "
                             "use 'explicit' or 'auto'")
        self.units = units
        self.merge_mode = merge_mode
        self.dropout = dropout
        self.projection_units = projection_units
        self.layer_norm = layer_norm
        self.time_reduction = time_reduction
        self.return_state = return_state
        self.implementation = implementation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.seed = seed
        self.use_fused = implementation == "fused" or (
            implementation == "auto" and not explicit_only and keras_compat.cudnn_available()
        )
        if self.use_fused and keras.backend.backend() == "tensorflow" and keras_compat.cudnn_available():
            self.supports_jit = False  # cuDNN ops are not XLA compatible, as for keras.layers.LSTM
        self.input_dropout = keras.layers.Dropout(dropout, noise_shape=(None, 1, None), seed=seed)
        self.input_spec = keras.InputSpec(ndim=3)
        self.supports_masking = True

    @property
    def state_units(self) -> int:
        """Size of the recurrent state r_t, which is also each direction's output."""
        return self.projection_units or self.units

    def build(self, input_shape):
        self.kernel, self.recurrent_kernel, self.bias, self.projection_kernel = [], [], [], []
        self.input_gamma, self.recurrent_gamma, self.cell_gamma, self.cell_beta = [], [], [], []
        # All of one direction before the other: the order of Bidirectional(LSTM).get_weights().
        input_dim = input_shape[-1] * self.time_reduction
        for direction in ("forward", "backward"):
            for weights, name, shape, initializer in self._weight_specs(input_dim):
                weight = self.add_weight(shape=shape, initializer=initializer, name=f"{direction}_{name}")
                weights.append(weight)

    def _weight_specs(self, input_dim):
        """(list, name, shape, initializer) of one direction's weights, Keras LSTM's three first."""
        gates, units, state_units = 4 * self.units, self.units, self.state_units
        specs = [
            (self.kernel, "kernel", (input_dim, gates), self.kernel_initializer),
            (self.recurrent_kernel, "recurrent_kernel", (state_units, gates), self.recurrent_initializer),
            (self.bias, "bias", (gates,), self._bias_initializer),
        ]
        if self.projection_units:
            specs.append(
                (self.projection_kernel, "projection_kernel", (units, state_units), self.kernel_initializer))
        if self.layer_norm:
            specs += [
                (self.input_gamma, "input_gamma", (gates,), "ones"),
                (self.recurrent_gamma, "recurrent_gamma", (gates,), "ones"),
                (self.cell_gamma, "cell_gamma", (units,), "ones"),
                (self.cell_beta, "cell_beta", (units,), "zeros"),
            ]
        return specs

    def _bias_initializer(self, shape, dtype=None):
        input_gate, forget_gate = ops.zeros((self.units,), dtype), ops.ones((self.units,), dtype)
        return ops.concatenate([input_gate, forget_gate, ops.zeros((2 * self.units,), dtype)])

    def call(self, inputs, mask=None, training=None):
        lengths = None
        if mask is not None:
            mask = ops.cast(mask, "bool")
            if self.time_reduction > 1:
                # Stacked frames must see zeros past the end, as they would if run alone.
                inputs = inputs * ops.cast(mask[:, :, None], inputs.dtype)
            mask = reduce_mask(mask, self.time_reduction)
            lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
        inputs = stack_frames(inputs, self.time_reduction)
        backward_inputs = reverse_within_lengths(inputs, lengths)
        loop_mask = mask if self.return_state else None
        run = self._fused if self.use_fused else self._explicit
        forward, backward, states = run(inputs, backward_inputs, loop_mask, training)
        backward = reverse_within_lengths(backward, lengths)
        if mask is not None:
            valid = ops.cast(mask[:, :, None], forward.dtype)
            forward, backward = forward * valid, backward * valid
        if self.merge_mode == "concat":
            outputs = ops.concatenate([forward, backward], axis=-1)
        else:
            outputs = forward + backward
        return (outputs, *states) if self.return_state else outputs

    def _fused(self, forward_inputs, backward_inputs, mask, training):
        """Each direction through the backend's LSTM kernel."""
        outputs, states = [], []
        for direction, inputs in enumerate((forward_inputs, backward_inputs)):
            inputs = self.input_dropout(inputs, training=training)
            sequence, final = _fused_lstm(
                inputs, mask, self.kernel[direction], self.recurrent_kernel[direction], self.bias[direction])
            outputs.append(sequence)
            states.extend(final)
        return outputs[0], outputs[1], states

    def _explicit(self, forward_inputs, backward_inputs, mask, training):
        """Both directions in one loop, folded into the batch: rows [0, B) forward, [B, 2B) backward."""
        units, state_units = self.units, self.state_units
        inputs = ops.concatenate([forward_inputs, backward_inputs], axis=0)
        inputs = self.input_dropout(inputs, training=training)  # noise (2B, 1, in): a mask per direction
        steps = ops.shape(inputs)[1]

        def by_direction(x, size):  # (2B, ..., size) -> (2, B·..., size): a free reshape
            return ops.reshape(x, (2, -1, size))

        # Input terms of every frame in one batched matmul: (2, B·T, in) @ (2, in, 4u).
        input_gates = ops.matmul(by_direction(inputs, inputs.shape[-1]), _stack(self.kernel))
        if self.layer_norm:
            input_gates = _layer_norm(input_gates) * _stack(self.input_gamma)[:, None, :]
        input_gates = ops.reshape(input_gates + _stack(self.bias)[:, None, :], (-1, steps, 4 * units))
        recurrent_kernel = _stack(self.recurrent_kernel)
        if self.layer_norm:
            recurrent_gamma = _stack(self.recurrent_gamma)[:, None, :]
            cell_gamma, cell_beta = _stack(self.cell_gamma)[:, None, :], _stack(self.cell_beta)[:, None, :]
        if self.projection_units:
            projection_kernel = _stack(self.projection_kernel)

        def step(input_gates_t, state):
            r, c = state
            recurrent_gates = ops.matmul(by_direction(r, state_units), recurrent_kernel)
            if self.layer_norm:
                recurrent_gates = _layer_norm(recurrent_gates) * recurrent_gamma
            gates = input_gates_t + ops.reshape(recurrent_gates, (-1, 4 * units))
            i, f, g, o = ops.split(gates, 4, axis=-1)
            c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
            cell = c
            if self.layer_norm:
                cell = ops.reshape(_layer_norm(by_direction(c, units)) * cell_gamma + cell_beta, (-1, units))
            h = ops.sigmoid(o) * ops.tanh(cell)
            if self.projection_units:
                h = ops.reshape(ops.matmul(by_direction(h, units), projection_kernel), (-1, state_units))
            return h, [h, c]

        batch = ops.shape(inputs)[0]
        initial = [ops.zeros((batch, state_units), inputs.dtype), ops.zeros((batch, units), inputs.dtype)]
        if mask is not None:
            mask = ops.concatenate([mask, mask], axis=0)
        outputs, (r, c) = keras_compat.rnn(step, input_gates, initial, mask=mask)
        forward, backward = ops.split(outputs, 2, axis=0)
        r_forward, r_backward = ops.split(r, 2, axis=0)
        c_forward, c_backward = ops.split(c, 2, axis=0)
        return forward, backward, [r_forward, c_forward, r_backward, c_backward]

    def compute_mask(self, inputs, mask=None):
        if mask is not None:
            mask = reduce_mask(mask, self.time_reduction)
        return [mask] + [None] * 4 if self.return_state else mask

    def compute_output_shape(self, input_shape):
        batch, steps = input_shape[0], input_shape[1]
        if steps is not None:
            steps = reduce_lengths(steps, self.time_reduction)
        features = self.state_units * (2 if self.merge_mode == "concat" else 1)
        outputs = (batch, steps, features)
        if not self.return_state:
            return outputs
        r, c = (batch, self.state_units), (batch, self.units)
        return outputs, r, c, r, c

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "merge_mode": self.merge_mode,
            "dropout": self.dropout,
            "projection_units": self.projection_units,
            "layer_norm": self.layer_norm,
            "time_reduction": self.time_reduction,
            "return_state": self.return_state,
            "implementation": self.implementation,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "seed": self.seed,
        }


def bilstm_stack(
    units: int,
    num_layers: int,
    *,
    dropout: float = 0.0,
    merge_mode: str = "concat",
    projection_units: int | None = None,
    layer_norm: bool = False,
    time_reductions: Sequence[int] | None = None,
    implementation: str = "auto",
    seed: int | None = None,
    name: str = "bilstm",
) -> list[BidirectionalLSTM]:
    """`num_layers` BidirectionalLSTM layers, input dropout on all but the first.

    time_reductions: one frame-stacking factor per layer, e.g. (1, 2, 2) for a
    pyramidal encoder that shortens time 4x; default no reduction.

    Thread the mask through explicitly:

        for layer in bilstm_stack(256, 3, dropout=0.2):
            x, mask = layer(x, mask=mask), layer.compute_mask(x, mask)

    or leave it to Keras's mask propagation (`x = layer(x)` on a masked tensor).
    """
    time_reductions = tuple(time_reductions or (1,) * num_layers)
    if len(time_reductions) != num_layers:
        raise ValueError(f"time_reductions needs one factor per layer ({num_layers}), got {time_reductions}")
    return [
        BidirectionalLSTM(
            units,
            merge_mode=merge_mode,
            dropout=dropout if index > 0 else 0.0,
            projection_units=projection_units,
            layer_norm=layer_norm,
            time_reduction=factor,
            implementation=implementation,
            seed=None if seed is None else seed + index,
            name=f"{name}_{index}",
        )
        for index, factor in enumerate(time_reductions)
    ]
