"""Every registered component: one import line each (importing runs its @register)."""

import models.entropy.hyperprior  # noqa: F401
import models.hyper.conv  # noqa: F401
import models.transforms.conv  # noqa: F401
