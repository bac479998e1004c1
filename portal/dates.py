"""Dates and times as a French reader reads them, in the portal's time zone (``portal_timezone``).

The registry and the audit trail keep UTC: XDS metadata times are DTM in UTC (ITI TF-3 4.2.3.1.4,
"Coordinated Universal Time"), audit EventDateTime is an xs:dateTime with its offset (DICOM PS3.15
A.5.1). A CDA header's times carry their own offset (HL7 v3 TS). Every one is shown here converted
to the configured zone, as ``16/03/2024 14:05`` (a date alone as ``16/03/2024``, never converted:
a day has no time zone).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DATE = "%d/%m/%Y"
DATE_TIME = "%d/%m/%Y %H:%M"
_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


class BadZone(ValueError):
    """``portal_timezone`` names no IANA zone."""


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Europe/Paris")
    except (ZoneInfoNotFoundError, ValueError):
        raise BadZone(f"portal_timezone {name!r} is not an IANA time zone (e.g. Europe/Paris)") from None


@dataclass(frozen=True)
class Clock:
    """Formats instants in one zone."""
    zone: ZoneInfo

    def instant(self, when: datetime | float | None, seconds: bool = False) -> str:
        """An instant (aware datetime, or a POSIX timestamp) as ``16/03/2024 14:05`` in the zone (with the
        seconds, ``14:05:07``, where an auditor orders events)."""
        if when is None:
            return ""
        if not isinstance(when, datetime):
            when = datetime.fromtimestamp(when, UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone(self.zone).strftime(DATE_TIME + (":%S" if seconds else ""))

    def iso(self, when: float | None) -> str:
        """A POSIX timestamp as ISO 8601 with the zone's offset (``2024-03-16T14:05:07+01:00``): for files a
        program reads (the auditor's CSV)."""
        return datetime.fromtimestamp(when, self.zone).isoformat(timespec="seconds") if when is not None else ""

    def dtm(self, value: str | None) -> str:
        """An HL7 DTM / TS: to the minute when it has one, converted from its offset (UTC without one,
        as XDS metadata times are); a date alone as a date."""
        v = (value or "").strip()
        m = _DTM.match(v)
        if not m or m.group(3) is None:
            return v
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        try:
            if m.group(5) is None:
                return date(year, month, day).strftime(DATE)
            offset = m.group(7)
            tz = UTC if not offset else timezone((1 if offset[0] == "+" else -1)
                                                 * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
            return self.instant(datetime(year, month, day, int(m.group(4)), int(m.group(5)), tzinfo=tz))
        except ValueError:
            return v

    def day_start(self, iso_day: str) -> float:
        """The first instant of a ``YYYY-MM-DD`` day in the zone, as a POSIX timestamp."""
        return datetime.fromisoformat(iso_day).replace(tzinfo=self.zone).timestamp()

    def day_end(self, iso_day: str) -> float:
        """The last instant of a ``YYYY-MM-DD`` day in the zone."""
        return (datetime.fromisoformat(iso_day) + timedelta(days=1)).replace(tzinfo=self.zone).timestamp() - 0.001

    def utc_dtm(self, iso_day: str, end: bool = False) -> str:
        """A ``YYYY-MM-DD`` day of the zone as the UTC DTM bound of an XDS time parameter (ITI TF-2
        3.18.4.1.2.3.7.1: creationTime From inclusive, To exclusive)."""
        moment = self.day_end(iso_day) + 0.001 if end else self.day_start(iso_day)
        return datetime.fromtimestamp(moment, UTC).strftime("%Y%m%d%H%M%S")
