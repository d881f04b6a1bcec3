"""Agreement input edges the mutation run found untested (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

from rlhfops.annotate.agreement import fleiss_kappa
from rlhfops.errors import UserError


@pytest.mark.parametrize("shape", [(0, 2), (3, 0), (3,)])
def test_fleiss_kappa_refuses_an_empty_or_flat_matrix(shape):
    with pytest.raises(UserError, match="non-empty items x categories"):
        fleiss_kappa(np.zeros(shape))
