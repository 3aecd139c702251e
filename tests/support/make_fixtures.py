"""Builds the distributions the local test index serves, with nothing but the standard library.

    python make_fixtures.py OUT_DIR [--bench N]

- purewheel-1.0-py3-none-any.whl: a pure wheel (with a console script, for `uvx`);
- sdistonly-1.0.tar.gz: a pure package published as an sdist only;
- cext-1.0.tar.gz: a small C extension, built from source by whoever installs it;
- urlpkg-1.0.tar.gz: a pure sdist installed by direct URL;
- zipext-1.0.zip: a C extension published as an old-style zip sdist;
- modernext-1.0.tar.gz: a C extension with `Requires-Python: >=3.8` and a build requirement
  with an environment marker (`purewheel; python_version >= '3.8'`), for heal's advice;
- with --bench N: benchpkg00..benchpkgNN-1.0.tar.gz, pure sdists;
- with --bench-ext N: benchext00..-1.0.tar.gz, C extensions for the heal benchmark (their
  built wheels fit one Python only, so another Python needs every source back).
The archives are made deterministically (fixed mtimes), so their sha256 is stable per content.
"""
import base64
import hashlib
import io
import os
import sys
import tarfile
import zipfile

MTIME = 1700000000


def pyproject(name, version, requires=("setuptools>=40.8.0",), requires_python=None):
    listed = ", ".join(f'"{r}"' for r in requires)
    text = f"""[build-system]
requires = [{listed}]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"
"""
    if requires_python:
        text += f'requires-python = "{requires_python}"\n'
    return text


def pkg_info(name, version, requires_python=None):
    text = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires_python:
        text += f"Requires-Python: {requires_python}\n"
    return text


def write_sdist(out, name, version, files):
    base = f"{name}-{version}"
    path = os.path.join(out, f"{base}.tar.gz")
    buf = io.BytesIO()
    import gzip
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=MTIME) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            dirs = set()
            for rel in sorted(files):
                parts = rel.split("/")[:-1]
                for i in range(len(parts) + 1):
                    d = "/".join([base] + parts[:i])
                    if d not in dirs:
                        dirs.add(d)
                        info = tarfile.TarInfo(d)
                        info.type = tarfile.DIRTYPE
                        info.mode = 0o755
                        info.mtime = MTIME
                        tar.addfile(info)
                data = files[rel].encode()
                info = tarfile.TarInfo(f"{base}/{rel}")
                info.size = len(data)
                info.mode = 0o644
                info.mtime = MTIME
                tar.addfile(info, io.BytesIO(data))
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def pure_sdist(out, name, version="1.0"):
    write_sdist(out, name, version, {
        "pyproject.toml": pyproject(name, version),
        "PKG-INFO": pkg_info(name, version),
        f"{name}/__init__.py": f"NAME = {name!r}\n",
    })


def cext_files(name, version):
    return {
        "pyproject.toml": pyproject(name, version),
        "PKG-INFO": pkg_info(name, version),
        "setup.py": (
            "from setuptools import Extension, setup\n"
            f"setup(ext_modules=[Extension('{name}._speed', ['{name}/_speed.c'])], packages=['{name}'])\n"
        ),
        f"{name}/__init__.py": "from ._speed import answer\n",
        f"{name}/_speed.c": (
            "#include <Python.h>\n"
            "static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }\n"
            "static PyMethodDef methods[] = {{\"answer\", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};\n"
            "static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"_speed\", NULL, -1, methods};\n"
            "PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }\n"
        ),
    }


def cext_sdist(out, name="cext"):
    write_sdist(out, name, "1.0", cext_files(name, "1.0"))


def modern_sdist(out):
    """A C extension for Python 3.8+ only, built with a marker-guarded extra requirement."""
    name, version, requires_python = "modernext", "1.0", ">=3.8"
    files = cext_files(name, version)
    files["pyproject.toml"] = pyproject(
        name,
        version,
        requires=("setuptools>=40.8.0", "purewheel; python_version >= '3.8'"),
        requires_python=requires_python,
    )
    files["PKG-INFO"] = pkg_info(name, version, requires_python)
    write_sdist(out, name, version, files)


def zip_sdist(out, name, version, files):
    """An old-style sdist: a zip with the same `<name>-<version>/` top directory."""
    path = os.path.join(out, f"{name}-{version}.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(files):
            info = zipfile.ZipInfo(f"{name}-{version}/{rel}", date_time=(2023, 11, 14, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[rel])


def pure_wheel(out):
    name, version = "purewheel", "1.0"
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "def main():\n    print('purewheel')\n",
        f"{dist_info}/METADATA": pkg_info(name, version),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: make_fixtures\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/entry_points.txt": "[console_scripts]\npurewheel = purewheel:main\n",
    }
    record = []
    for rel, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    path = os.path.join(out, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(files):
            info = zipfile.ZipInfo(rel, date_time=(2023, 11, 14, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[rel])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    pure_wheel(out)
    pure_sdist(out, "sdistonly")
    pure_sdist(out, "urlpkg")
    cext_sdist(out)
    zip_sdist(out, "zipext", "1.0", cext_files("zipext", "1.0"))
    modern_sdist(out)
    if "--bench" in sys.argv:
        n = int(sys.argv[sys.argv.index("--bench") + 1])
        for i in range(n):
            pure_sdist(out, f"benchpkg{i:02d}")
    if "--bench-ext" in sys.argv:
        n = int(sys.argv[sys.argv.index("--bench-ext") + 1])
        for i in range(n):
            cext_sdist(out, f"benchext{i:02d}")


if __name__ == "__main__":
    main()
