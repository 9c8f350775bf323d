"""Addresses to named stacks: mappings over time, ELF, DWARF CFI unwinding, symbols."""
