"""Parsing catena's event log and W3C access log.

Event log line: `2026-11-30T06:40:00.123Z <level> [main|ssl] message ...`.
Access log: "#Software:", "#Version:", "#Fields: f1 f2 ..." then one line per transaction;
fields are space separated, a field with spaces is double-quoted, an empty one is "-".
Records are dicts keyed by the names of the latest #Fields line above them.
"""
import re
from collections import namedtuple

DEFAULT_FIELDS = ("date time time-taken c-ip cs-username s-action sc-status cs-method "
                  "cs-uri-scheme cs-host cs-uri-port cs-uri-path cs-uri-query sc-bytes cs-bytes "
                  "s-ip s-supplier-ip cs(User-Agent) x-exception-id").split()

LEVELS = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
SEVERE = {"emerg", "alert", "crit", "err"}

Event = namedtuple("Event", "time level fac msg raw")

_EVENT = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (%s) \[(\w+)\] (.*)$"
                    % "|".join(LEVELS))


def parse_event_line(line):
    """An Event, or None for a line that does not have the event-log shape."""
    m = _EVENT.match(line)
    if not m:
        return None
    return Event(m.group(1), m.group(2), m.group(3), m.group(4), line)


def parse_events(text):
    """(events, odd_lines): every well-formed line, and those that are not."""
    events, odd = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        e = parse_event_line(line)
        if e is None:
            odd.append(line)
        else:
            events.append(e)
    return events, odd


def split_w3c(line):
    """Splits one access-log line into fields; quoted fields may hold spaces, and a quote
    inside them is written either doubled ("") or backslash-escaped (\\")."""
    out = []
    i, n = 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        if line[i] == '"':
            i += 1
            buf = []
            while i < n:
                c = line[i]
                if c == "\\" and i + 1 < n:
                    buf.append(line[i + 1])
                    i += 2
                    continue
                if c == '"':
                    if i + 1 < n and line[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(c)
                i += 1
            out.append("".join(buf))
        else:
            j = line.find(" ", i)
            if j < 0:
                j = n
            out.append(line[i:j])
            i = j
    return out


class AccessLog:
    def __init__(self, text):
        self.headers = []
        self.fields = None
        self.records = []
        self.bad = []
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                self.headers.append(line)
                if line.startswith("#Fields:"):
                    self.fields = line[len("#Fields:"):].split()
                continue
            vals = split_w3c(line)
            if self.fields is None or len(vals) != len(self.fields):
                self.bad.append(line)
                continue
            rec = dict(zip(self.fields, vals))
            rec["_line"] = line
            self.records.append(rec)

    def find(self, **want):
        """Records whose fields equal the given values; a field name's '-' and '(' ')' are
        written as '_' in keyword form: s_action="TCP_TUNNELED", cs_host="origin.test"."""
        out = []
        for r in self.records:
            if all(_get(r, k) == str(v) for k, v in want.items()):
                out.append(r)
        return out


def _get(rec, kw):
    if kw in rec:
        return rec[kw]
    for k in rec:
        if k.replace("-", "_").replace("(", "_").replace(")", "").lower() == kw.lower():
            return rec[k]
    return None


def field(rec, name):
    """rec[name], accepting the keyword spelling too (cs_host for cs-host)."""
    return _get(rec, name)
