"""`istioctl proxy-config clusters`: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE."""

from __future__ import annotations

from dataclasses import dataclass

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.table import Table

HEADERS = ("SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE")


@dataclass(frozen=True)
class ClusterFilter:
    """istioctl's --fqdn, --port, --subset, --direction: substring tests on the cluster name."""

    fqdn: str = ""
    port: int = 0
    subset: str = ""
    direction: str = ""

    def verify(self, name: str) -> bool:
        if self.fqdn and self.fqdn not in name:
            return False
        if self.direction and self.direction not in name:
            return False
        if self.subset and self.subset not in name:
            return False
        return not (self.port and f"|{self.port}|" not in name)


def matching(dump: cd.Json, flt: ClusterFilter) -> list[cd.Json]:
    """The raw clusters that pass the filter, in istioctl's order."""
    found = sorted(cd.clusters(dump), key=lambda c: cd.sort_key(str(c.get("name", ""))))
    return [c for c in found if flt.verify(str(c.get("name", "")))]


def table(dump: cd.Json, flt: ClusterFilter = ClusterFilter()) -> Table:
    t = Table(HEADERS)
    for c in matching(dump, flt):
        name = str(c.get("name", ""))
        ctype = str(c.get("type") or "STATIC")  # proto3 default, omitted when the cluster uses cluster_type
        mgmt = cd.describe_management(c.get("metadata"))
        if len(name.split("|")) > 3:
            direction, port, subset, fqdn = cd.parse_subset_key(name)
            t.rows.append({"NAME": name, "SERVICE FQDN": fqdn, "PORT": port, "SUBSET": subset or "-",
                           "DIRECTION": direction, "TYPE": ctype, "DESTINATION RULE": mgmt})
        else:
            t.rows.append({"NAME": name, "SERVICE FQDN": name, "PORT": "-", "SUBSET": "-", "DIRECTION": "-",
                           "TYPE": ctype, "DESTINATION RULE": mgmt})
    return t
