"""The bounds of a search known before any trial: the hypervolume reference point, and whether
``max_params`` leaves any architecture of the space (``search.engine`` re-exports both)."""

from __future__ import annotations

from models import count_macs
from search.config import SearchConfig
from search.errors import SpaceError
from search.space import check_space, largest_spec
from search.space.extent import smallest_params

__all__ = ["check_max_params", "reference_point"]


def check_max_params(config: SearchConfig) -> None:
    """SearchError when ``max_params`` is below every architecture of the space (each would be
    refused, the front would stay empty), naming both numbers."""
    if config.max_params is None:
        return
    input_shape, num_classes = config.data_shape()
    fewest = smallest_params(config.space, input_shape=input_shape, num_classes=num_classes)
    if config.max_params < fewest:
        kinds = {*config.space.kinds, *config.space.classifier_kinds,
                 *(k for c in config.space.convs for k in c.kinds),
                 *(k for o in config.space.layers for k in (o.kinds or ()))}
        rank = " (low-rank layers at rank 1)" if "lowrank" in kinds else ""
        raise SpaceError(
            "max_params", f"got {config.max_params}; the smallest architecture of the space "
            f"has {fewest} parameters{rank}: raise max_params to at least {fewest} or add "
            "smaller choices to the space"
        )


def reference_point(config: SearchConfig) -> list[float]:
    """The hypervolume reference ``[accuracy, params(, macs)]``: accuracy 0, params = max_params
    if set, else the largest architecture's count (and its MACs). SpaceError when the space cannot
    be built on the dataset's shape or exceeds the size limit, or ``max_params`` is below its
    smallest architecture (``check_max_params``)."""
    input_shape, num_classes = config.data_shape()
    largest = check_space(config.space, input_shape=input_shape, num_classes=num_classes)
    check_max_params(config)
    point = [0.0, float(config.max_params if config.max_params is not None else largest)]
    if "macs" in config.objectives:
        spec = largest_spec(config.space, input_shape=input_shape, num_classes=num_classes,
                            cost=count_macs)
        point.append(float(count_macs(spec)))
    return point
