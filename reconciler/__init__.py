"""pbx-reconciler: declarative, GitOps-style management of PBX extensions in PortaBilling."""

from __future__ import annotations

__version__ = "0.1.0"
