"""pprof's profile.proto, gzip-compressed: what `go tool pprof`, Pyroscope, Parca and Grafana
read. Format: docs/export.md; the messages: github.com/google/pprof, proto/profile.proto.

One sample per process image and stack, its values per sample type (bytes and calls of each
kind, or bytes held), labelled with the pid and process name; with process names on, the
process is also the root frame, as in `heaptrace flame`. Every frame is a location: its
address, the mapping it was in (file, offset, build-id) and a function named as in the flame
graph (`module+0xVADDR` when the binary had no symbol for it), with its source file and line
where the binary's DWARF line tables give them (stacks/lines.py).
"""

from __future__ import annotations

import gzip
import re
from enum import IntEnum
from typing import BinaryIO, Dict, List, Optional, Set, Tuple

from heaptrace.analysis.samples import Located, Place, Sample, Samples
from heaptrace.events import Frame
from heaptrace.render.protobuf import delimited, integer, message, packed

LIBRARY = re.compile(r"\.so($|\.)|^\[|^$")  # shared objects, [vdso], anonymous code


class ProfileField(IntEnum):
    SAMPLE_TYPE = 1
    SAMPLE = 2
    MAPPING = 3
    LOCATION = 4
    FUNCTION = 5
    STRING_TABLE = 6
    TIME_NANOS = 9
    DURATION_NANOS = 10
    COMMENT = 13
    DEFAULT_SAMPLE_TYPE = 14


class ValueTypeField(IntEnum):
    TYPE = 1
    UNIT = 2


class SampleField(IntEnum):
    LOCATION_ID = 1
    VALUE = 2
    LABEL = 3


class LabelField(IntEnum):
    KEY = 1
    STR = 2
    NUM = 3


class MappingField(IntEnum):
    ID = 1
    MEMORY_START = 2
    MEMORY_LIMIT = 3
    FILE_OFFSET = 4
    FILENAME = 5
    BUILD_ID = 6
    HAS_FUNCTIONS = 7
    HAS_FILENAMES = 8
    HAS_LINE_NUMBERS = 9


class LocationField(IntEnum):
    ID = 1
    MAPPING_ID = 2
    ADDRESS = 3
    LINE = 4


class LineField(IntEnum):
    FUNCTION_ID = 1
    LINE = 2


class FunctionField(IntEnum):
    ID = 1
    NAME = 2
    SYSTEM_NAME = 3
    FILENAME = 4


class Tables:
    """The profile's string table, functions, mappings and locations, each entry once; ids
    start at 1 (0 means none)."""

    def __init__(self) -> None:
        self.strings: Dict[str, int] = {"": 0}
        self.functions: Dict[Tuple[str, str], int] = {}  # (name, source file) -> id
        self.mappings: Dict[Place, int] = {}
        self.named_mappings: Set[int] = set()  # ids of mappings with at least one named frame
        self.lined_mappings: Set[int] = set()  # ... with at least one source line
        self.locations: Dict[Tuple, int] = {}
        self.encoded_locations: List[bytes] = []

    def string(self, text: str) -> int:
        return self.strings.setdefault(text, len(self.strings))

    def function(self, name: str, filename: str = "") -> int:
        return self.functions.setdefault((name, filename), len(self.functions) + 1)

    def mapping(self, place: Optional[Place]) -> int:
        return 0 if place is None else self.mappings.setdefault(place, len(self.mappings) + 1)

    def location(self, loc: Located) -> int:
        """A frame's location: by mapping and address when it has one, else by name."""
        frame = loc.frame
        key = (loc.place, frame.addr, frame.name) if frame.addr is not None else (
            None, None, frame.name, frame.module)
        found = self.locations.get(key)
        if found is None:
            found = self.locations[key] = len(self.locations) + 1
            mapping_id = self.mapping(loc.place)
            if loc.symbolized and mapping_id:
                self.named_mappings.add(mapping_id)
            filename, line = loc.source or ("", 0)
            if loc.source and mapping_id:
                self.lined_mappings.add(mapping_id)
            self.encoded_locations.append(message(ProfileField.LOCATION, [
                integer(LocationField.ID, found), integer(LocationField.MAPPING_ID, mapping_id),
                integer(LocationField.ADDRESS, frame.addr or 0),
                message(LocationField.LINE, [
                    integer(LineField.FUNCTION_ID, self.function(frame.name, filename)),
                    integer(LineField.LINE, line)])]))
        return found

    def root(self, name: str) -> int:
        """The location of a process-name root frame: a function with no address."""
        return self.location(Located(Frame(name), None, True))


def encode(samples: Samples) -> bytes:
    """The uncompressed Profile message."""
    tables = Tables()
    for place in programs_first(samples):
        tables.mapping(place)
    body = [value_type(ProfileField.SAMPLE_TYPE, t.type, t.unit, tables) for t in samples.types]
    body += [sample(s, samples.process_names, tables) for s in samples.samples]
    body += [mapping(place, mid, tables) for place, mid in tables.mappings.items()]
    body += tables.encoded_locations
    body += [message(ProfileField.FUNCTION, [
        integer(FunctionField.ID, fid), integer(FunctionField.NAME, tables.string(name)),
        integer(FunctionField.SYSTEM_NAME, tables.string(name)),
        integer(FunctionField.FILENAME, tables.string(filename))])
        for (name, filename), fid in tables.functions.items()]
    body.append(integer(ProfileField.TIME_NANOS, samples.started_ns or 0))
    body.append(integer(ProfileField.DURATION_NANOS, samples.duration_ns or 0))
    body.append(integer(ProfileField.COMMENT, tables.string(samples.description)))
    if samples.types:
        body.append(integer(ProfileField.DEFAULT_SAMPLE_TYPE,
                            tables.string(samples.types[0].type)))
    body += [delimited(ProfileField.STRING_TABLE, s.encode("utf-8", "surrogateescape"))
             for s in tables.strings]  # last: every other part has added its strings
    return b"".join(body)


def programs_first(samples: Samples) -> List[Place]:
    """The mappings that hold stacks' outermost frames, programs before libraries (the
    dynamic loader's own stacks start in ld.so), then by bytes: pprof takes the first
    mapping as the profile's main binary."""
    weight: Dict[Place, int] = {}
    for s in samples.samples:
        outer = next((loc.place for loc in reversed(s.frames) if loc.place), None)
        if outer is not None:
            weight[outer] = weight.get(outer, 0) + s.values[0]
    return sorted(weight, key=lambda p: (bool(LIBRARY.search(p.path)), -weight[p]))


def value_type(field: int, type_: str, unit: str, tables: Tables) -> bytes:
    return message(field, [integer(ValueTypeField.TYPE, tables.string(type_)),
                           integer(ValueTypeField.UNIT, tables.string(unit))])


def sample(s: Sample, process_root: bool, tables: Tables) -> bytes:
    ids = [tables.location(loc) for loc in s.frames]
    if process_root:
        ids.append(tables.root(s.process.name))
    labels = [message(SampleField.LABEL, [integer(LabelField.KEY, tables.string("pid")),
                                          integer(LabelField.NUM, s.process.pid)]),
              message(SampleField.LABEL, [integer(LabelField.KEY, tables.string("process")),
                                          integer(LabelField.STR, tables.string(s.process.name))])]
    return message(ProfileField.SAMPLE, [packed(SampleField.LOCATION_ID, ids),
                                         packed(SampleField.VALUE, list(s.values)), *labels])


def mapping(place: Place, mapping_id: int, tables: Tables) -> bytes:
    return message(ProfileField.MAPPING, [
        integer(MappingField.ID, mapping_id),
        integer(MappingField.MEMORY_START, place.start),
        integer(MappingField.MEMORY_LIMIT, place.end),
        integer(MappingField.FILE_OFFSET, place.offset),
        integer(MappingField.FILENAME, tables.string(place.path)),
        integer(MappingField.BUILD_ID, tables.string(place.build_id or "")),
        integer(MappingField.HAS_FUNCTIONS, mapping_id in tables.named_mappings),
        integer(MappingField.HAS_FILENAMES, mapping_id in tables.lined_mappings),
        integer(MappingField.HAS_LINE_NUMBERS, mapping_id in tables.lined_mappings)])


def write(samples: Samples, out: BinaryIO) -> None:
    """The gzip-compressed profile (mtime 0: the same samples give the same bytes)."""
    out.write(gzip.compress(encode(samples), mtime=0))
