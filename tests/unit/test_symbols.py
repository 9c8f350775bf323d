"""Symbol tables, aliases, perf maps, demangling and the module+offset fallback."""

from __future__ import annotations

from heaptrace.events import Frame
from heaptrace.stacks.procmaps import ANON, Mapping, ProcMaps
from heaptrace.stacks.symbols import Symbolizer, SymbolTable, demangle, is_symbolized
from tests.helpers.stackfixtures import STACKS

CHAIN = f"{STACKS}/bin/chain"


def test_lookup_by_size_and_by_next_symbol():
    table = SymbolTable([(0x100, 0x10, "f"), (0x200, 0, "label"), (0x300, 4, "g")])
    assert table.lookup(0x10F) == "f"
    assert table.lookup(0x110) is None  # past f's end
    assert table.lookup(0x2FF) == "label"  # no size: up to the next symbol
    assert table.lookup(0x304) is None and table.lookup(0xFF) is None


def test_aliases_prefer_the_public_name():
    table = SymbolTable([(0x10, 8, "__GI___clone3"), (0x10, 8, "clone3"), (0x10, 8, "__clone3")])
    assert table.lookup(0x12) == "clone3"


def _chain_maps():
    maps = ProcMaps()
    maps.add(1, Mapping(0x555555555000, 0x555555556000, 0x1000, CHAIN, None))
    maps.add(1, Mapping(0x7000, 0x8000, 0, ANON))
    return maps


def test_symbol_and_return_address_one_byte_back(tmp_path):
    sym = Symbolizer(_chain_maps(), perf_map_dir=str(tmp_path))
    # In tests/data/stacks/bin/chain level1 is 0x12c0..0x12d2 and level2 0x12a0..0x12b2: a
    # return address just past level2 (a call to a noreturn function, last) is still level2.
    assert sym.frame(1, 0x5555555552C0) == Frame("level1", "chain", 0x5555555552C0)
    assert sym.frame(1, 0x5555555552B2).name == "chain+0x12b2"
    leaf, caller = sym.stack(1, [0x5555555552C0, 0x5555555552B2])
    assert leaf.name == "level1" and caller == Frame("level2", "chain", 0x5555555552B2)


def test_no_symbol_gives_module_and_offset(tmp_path):
    sym = Symbolizer(_chain_maps(), perf_map_dir=str(tmp_path))
    frame = sym.frame(1, 0x555555555000)  # .init/.plt area: 0x1000, no function symbol
    assert frame.module == "chain" and frame.name in ("_init", "chain+0x1000")
    unknown = sym.frame(1, 0x123456)
    assert unknown.name == "0x123456" and not is_symbolized(unknown)


def test_jit_code_from_perf_map(tmp_path):
    (tmp_path / "perf-1.map").write_text("7000 40 jitted_fn\n7040 10 other\n")
    sym = Symbolizer(_chain_maps(), perf_map_dir=str(tmp_path))
    assert sym.frame(1, 0x7010) == Frame("jitted_fn", "perf-1.map", 0x7010)
    assert sym.frame(1, 0x7800).name == "0x7800"


def test_each_address_resolved_once(tmp_path, monkeypatch):
    sym = Symbolizer(_chain_maps(), perf_map_dir=str(tmp_path))
    looked_up = []
    lookup = sym._lookup
    monkeypatch.setattr(sym, "_lookup", lambda *a: looked_up.append(a[:2]) or lookup(*a))
    sym.stacks([(1, [0x5555555552C0] * 3)] * 10, callers=False)
    assert looked_up == [(1, 0x5555555552C0)]


def test_without_cpp_filt_names_stay_as_they_are(monkeypatch):
    monkeypatch.setattr("heaptrace.stacks.symbols.shutil.which", lambda name: None)
    assert demangle(["_ZN4heap8allocateEv", "malloc"]) == {}
