"""Every registered component: one import line each (importing runs its @register)."""

import models.entropy.charm  # noqa: F401
import models.entropy.elic  # noqa: F401
import models.entropy.hyperprior  # noqa: F401
import models.hyper.conv  # noqa: F401
import models.hyper.swint  # noqa: F401
import models.transforms.conv  # noqa: F401
import models.transforms.elic  # noqa: F401
import models.transforms.swint  # noqa: F401
