"""Resolve an ArchSpec into concrete layer shapes: the ONE place where shapes are chained.

Builder (models.builder) and costs (models.costs) both read these plans, so the analytic counts and
the built modules cannot drift apart. No torch here.

Rules (see models.spec):

- convolutions: ``channels(base_channels, multiplier)`` outputs, stride 1, 'same' padding, ReLU,
  then an optional 2 x 2 max-pool (floor). A pool needs a map of at least 2 x 2.
- hidden projections: output map (channels, *hidden_hw)*, hidden_hw defaulting to the spatial size
  of the map entering the projection stack; ReLU after each.
- classifier: output map (1, 1, num_classes), flattened to (N, num_classes) logits.
- low-rank matrix view W (m x n): projections m = out features, n = in features; channel-wise conv
  (C_out, C_in*k*k); spatial-wise conv (C_out*k, C_in*k). rank None -> min(m, n).
- bilinear grids: the input map (C, H, W) is used as C channels of H x W when H, W >= 2; a flat map
  (H or W == 1) is reshaped into square_factors(H * W). The output grid is (h, w) likewise, a flat
  output (e.g. the classifier's) using the most square factors of h * w (k1 may be 1 there).

>>> from models.spec import ArchSpec, LayerSpec
>>> plans = plan_layers(ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=16,
...                              layers=(LayerSpec(kind="bilinear"),),
...                              classifier=LayerSpec(kind="bilinear")))
>>> [(p.path, p.in_shape, p.out_shape, p.out_grid) for p in plans]  # doctest: +NORMALIZE_WHITESPACE
[('layers[0]', (1, 8, 8), (16, 8, 8), (8, 8)), ('classifier', (16, 8, 8), (1, 1, 10), (2, 5))]
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import SpecError
from models.shapes import most_square_factors, square_factors
from models.spec import ArchSpec, ConvSpec, LayerSpec, channels

__all__ = ["ConvPlan", "LayerPlan", "ProjectionPlan", "plan_layers"]

Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class ConvPlan:
    """One resolved convolution. ``rank`` is the resolved low-rank rank (None for kind 'full')."""

    path: str
    spec: ConvSpec
    in_shape: Shape3
    conv_shape: Shape3  # after the convolution, before the pool
    out_shape: Shape3  # after the optional pool
    rank: int | None
    m: int  # rows of the matrix view of the weight
    n: int  # columns of the matrix view of the weight

    @property
    def kind(self) -> str:
        return self.spec.kind


@dataclass(frozen=True)
class ProjectionPlan:
    """One resolved projection (hidden layer or classifier)."""

    path: str
    spec: LayerSpec
    in_shape: Shape3
    out_shape: Shape3
    in_grid: tuple[int, int]  # bilinear (d1, d2); for other kinds (H, W) of in_shape
    out_grid: tuple[int, int]  # bilinear (k1, k2); for other kinds (h, w) of out_shape
    rank: int | None
    relu: bool  # hidden layers are followed by ReLU, the classifier is not

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def in_features(self) -> int:
        return self.n

    @property
    def out_features(self) -> int:
        return self.m

    @property
    def m(self) -> int:
        c, h, w = self.out_shape
        return c * h * w

    @property
    def n(self) -> int:
        c, h, w = self.in_shape
        return c * h * w


LayerPlan = ConvPlan | ProjectionPlan


def _resolve_rank(path: str, rank: int | None, *, m: int, n: int, m_name: str, n_name: str) -> int:
    limit = min(m, n)
    if rank is None:
        return limit
    if rank > limit:
        raise SpecError(
            f"{path}.rank",
            f"rank must be <= min({m_name}, {n_name}) = {limit}; got rank={rank}, "
            f"{n_name}={n}, {m_name}={m} (lower the rank or use null for full rank)",
        )
    return rank


def _plan_conv(path: str, conv: ConvSpec, in_shape: Shape3, base_channels: int) -> ConvPlan:
    c_in, h, w = in_shape
    c_out = channels(base_channels, conv.multiplier)
    k = conv.kernel_size
    conv_shape = (c_out, h, w)
    if conv.pool:
        if h < 2 or w < 2:
            raise SpecError(
                f"{path}.pool",
                f"the feature map entering is {in_shape} (C, H, W); a 2 x 2 max-pool needs "
                "H, W >= 2; drop the pool, pool in fewer convolutions, or use a larger input",
            )
        out_shape = (c_out, h // 2, w // 2)
    else:
        out_shape = conv_shape
    if conv.decomposition == "spatial":
        m, n, names = c_out * k, c_in * k, ("out_channels*k", "in_channels*k")
    else:
        m, n, names = c_out, c_in * k * k, ("out_channels", "in_channels*k*k")
    rank = None
    if conv.kind == "lowrank":
        rank = _resolve_rank(path, conv.rank, m=m, n=n, m_name=names[0], n_name=names[1])
    return ConvPlan(path=path, spec=conv, in_shape=in_shape, conv_shape=conv_shape,
                    out_shape=out_shape, rank=rank, m=m, n=n)


def _grid(path: str, hw: tuple[int, int], *, strict: bool) -> tuple[int, int]:
    """A bilinear grid for an (h, w) map: itself when both >= 2, else a factorisation of h * w."""
    if hw[0] >= 2 and hw[1] >= 2:
        return hw
    size = hw[0] * hw[1]
    return square_factors(size, field=path) if strict else most_square_factors(size)


def _plan_projection(path: str, layer: LayerSpec, *, in_shape: Shape3, out_shape: Shape3,
                     relu: bool) -> ProjectionPlan:
    in_grid, out_grid = in_shape[1:], out_shape[1:]
    rank = None
    if layer.kind == "bilinear":
        in_grid = _grid(path, in_grid, strict=True)
        out_grid = _grid(path, out_grid, strict=False)
    m = out_shape[0] * out_shape[1] * out_shape[2]
    n = in_shape[0] * in_shape[1] * in_shape[2]
    if layer.kind == "lowrank":
        rank = _resolve_rank(path, layer.rank, m=m, n=n, m_name="out_features",
                             n_name="in_features")
    return ProjectionPlan(path=path, spec=layer, in_shape=in_shape, out_shape=out_shape,
                          in_grid=(in_grid[0], in_grid[1]), out_grid=(out_grid[0], out_grid[1]),
                          rank=rank, relu=relu)


def plan_layers(spec: ArchSpec) -> tuple[LayerPlan, ...]:
    """Every layer of ``spec`` in forward order: convolutions, hidden projections, classifier.

    Raises SpecError (naming the layer's field) when shapes do not chain or a rank is too large.
    """
    plans: list[LayerPlan] = []
    shape: Shape3 = spec.input_shape
    for i, conv in enumerate(spec.convs):
        conv_plan = _plan_conv(f"convs[{i}]", conv, shape, spec.base_channels)
        plans.append(conv_plan)
        shape = conv_plan.out_shape
    hidden_hw = spec.hidden_hw if spec.hidden_hw is not None else (shape[1], shape[2])
    for i, layer in enumerate(spec.layers):
        out_shape = (channels(spec.base_channels, layer.multiplier), *hidden_hw)
        plan = _plan_projection(f"layers[{i}]", layer, in_shape=shape, out_shape=out_shape,
                                relu=True)
        plans.append(plan)
        shape = plan.out_shape
    plans.append(_plan_projection("classifier", spec.classifier, in_shape=shape,
                                  out_shape=(1, 1, spec.num_classes), relu=False))
    return tuple(plans)
