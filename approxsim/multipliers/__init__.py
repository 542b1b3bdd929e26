"""The multiplier registry: built-ins, user C/C++ models and ApproxTrain tables.

>>> from approxsim import multipliers
>>> multipliers.available()[:3]
['fp32', 'bf16', 'mbm1']
>>> multipliers.get("MBM_7").name
'mbm7'

Built-in multipliers are C files in the package (``approxsim.builtin_models``), turned into
tables by the same flow as user models (:func:`register_c`), at first use, and cached. User
multipliers registered with :func:`register_c` are recorded in the cache folder (with a copy
of their sources) and stay registered in later processes.

Modules: ``_registry`` (names in this process), ``_store`` (the persistent registry file),
``_register`` (registration), ``_builtin``/``_library``/``_direct`` (the built-ins).
"""

from __future__ import annotations

from approxsim.multiplier import Multiplier
from approxsim.multipliers._builtin import (APPROXTRAIN_REF, BF16_REF, MBM_REF, MITCHELL_REF,  # noqa: F401
                                            builtin_source_dir)
from approxsim.multipliers._register import (from_approxtrain, register, register_c, restore_registry,
                                             unregister)
from approxsim.multipliers._registry import available, get

__all__ = ["Multiplier", "available", "get", "register", "unregister", "register_c", "from_approxtrain",
           "restore_registry", "builtin_source_dir"]
