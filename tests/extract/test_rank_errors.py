"""User errors found by rank 0 reach every torchrun rank with their own type."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import pytest

from cactus_features import errors
from cactus_features.extract.distributed import (
    DistContext,
    decode_error,
    encode_error,
    on_main,
)

USER_ERRORS = [errors.UserError, errors.DataError, errors.ConfigError, errors.CacheError]
USER_ERRORS.append(errors.WeightsError)


@pytest.mark.parametrize("cls", USER_ERRORS)
def test_encoded_error_round_trips_through_pickle_with_its_type(cls):
    sent = pickle.loads(pickle.dumps(encode_error(cls("entry is busy; wait"))))
    back = decode_error(sent)
    assert type(back) is cls and str(back) == "entry is busy; wait"


def test_a_subclass_outside_errors_travels_as_its_nearest_known_class():
    class LockBusy(errors.CacheError):
        pass

    assert encode_error(LockBusy("busy")) == ("CacheError", "busy")
    assert type(decode_error(("NoSuchError", "x"))) is errors.UserError


@dataclass(frozen=True)
class FakeRanks(DistContext):
    """Two ranks; ``broadcast`` delivers what rank 0 last sent, through pickle."""

    box: list = None  # type: ignore[assignment]

    def broadcast(self, obj: Any) -> Any:
        if self.rank == 0:
            self.box.append(pickle.dumps(obj))
            return obj
        return pickle.loads(self.box[-1])


def test_on_main_raises_rank_zeros_error_on_every_rank():
    box: list = []
    main, other = FakeRanks(0, 2, box=box), FakeRanks(1, 2, box=box)

    def fails() -> list[int]:
        raise errors.ConfigError("bad option")

    with pytest.raises(errors.ConfigError, match="bad option"):
        on_main(main, fails)
    with pytest.raises(errors.ConfigError, match="bad option") as caught:
        on_main(other, lambda: pytest.fail("only rank 0 does the work"))
    assert type(caught.value) is errors.ConfigError


def test_on_main_gives_rank_zeros_result_to_every_rank():
    box: list = []
    assert on_main(FakeRanks(0, 2, box=box), lambda: [3, 1]) == [3, 1]
    assert on_main(FakeRanks(1, 2, box=box), lambda: pytest.fail("rank 0 only")) == [3, 1]
    assert on_main(DistContext(), lambda: "alone") == "alone"
