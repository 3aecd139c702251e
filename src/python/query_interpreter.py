# Reports what `packaging.tags` reads about the running interpreter, as one JSON object.
# Run by cache-heal with `python -I -c`; must stay valid on every Python 3.
import importlib.machinery
import json
import os
import platform
import re
import struct
import subprocess
import sys
import sysconfig


def var(name):
    try:
        return sysconfig.get_config_var(name)
    except Exception:
        return None


def as_int(value):
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def glibc():
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, OSError, ValueError):
        return None
    if not text:
        return None
    m = re.match(r"[^ ]+ ([0-9]+)\.([0-9]+)", text)
    return [int(m.group(1)), int(m.group(2))] if m else None


def elf_interpreter(path):
    # PT_INTERP of the executable, like packaging's `_elffile`.
    try:
        with open(path, "rb") as f:
            ident = f.read(16)
            if ident[:4] != b"\x7fELF":
                return None
            bits64 = ident[4] == 2
            end = "<" if ident[5] == 1 else ">"
            if bits64:
                f.seek(32)
                phoff, = struct.unpack(end + "Q", f.read(8))
                f.seek(54)
                phentsize, phnum = struct.unpack(end + "HH", f.read(4))
            else:
                f.seek(28)
                phoff, = struct.unpack(end + "I", f.read(4))
                f.seek(42)
                phentsize, phnum = struct.unpack(end + "HH", f.read(4))
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                if bits64:
                    p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack(
                        end + "IIQQQQ", f.read(40))
                else:
                    p_type, p_offset, _vaddr, _paddr, p_filesz = struct.unpack(
                        end + "IIIII", f.read(20))
                if p_type == 3:
                    f.seek(p_offset)
                    return f.read(p_filesz).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None


def musl():
    ld = elf_interpreter(sys.executable)
    if not ld or "musl" not in ld:
        return None
    try:
        out = subprocess.run([ld], stderr=subprocess.PIPE, stdout=subprocess.PIPE).stderr
    except OSError:
        return None
    m = re.search(rb"Version ([0-9]+)\.([0-9]+)", out)
    return [int(m.group(1)), int(m.group(2))] if m else None


mac = platform.mac_ver()
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": list(sys.version_info[:3]),
    "platform": sysconfig.get_platform(),
    "pointer_bits": struct.calcsize("P") * 8,
    "py_debug": as_int(var("Py_DEBUG")),
    "gil_disabled": as_int(var("Py_GIL_DISABLED")),
    "with_pymalloc": as_int(var("WITH_PYMALLOC")),
    "has_refcount": hasattr(sys, "gettotalrefcount"),
    "ext_suffixes": list(importlib.machinery.EXTENSION_SUFFIXES),
    "ext_suffix": var("EXT_SUFFIX"),
    "py_version_nodot": var("py_version_nodot"),
    "glibc": glibc() if platform.system() == "Linux" else None,
    "musl": musl() if platform.system() == "Linux" else None,
    "mac_version": mac[0] or None,
    "mac_machine": mac[2] or None,
    "system": platform.system(),
    "executable": sys.executable,
}))
