"""C++ and Rust names demangled by binutils' c++filt, as the symbolizer runs it."""

from __future__ import annotations

from heaptrace.stacks.symbols import demangle


def test_demangles_cpp_and_rust():
    names = demangle(["_ZN4heap8allocateEv", "_ZN4core3fmt5write17h0123456789abcdefE",
                      "_RNvCs1234_7mycrate3foo", "malloc"])
    assert names["_ZN4heap8allocateEv"] == "heap::allocate()"
    assert names["_ZN4core3fmt5write17h0123456789abcdefE"] == "core::fmt::write"
    assert names["_RNvCs1234_7mycrate3foo"].endswith("::foo")
    assert "malloc" not in names
