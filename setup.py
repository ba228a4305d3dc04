"""The one compiled piece: app/asr/_ctcbeam.c, the lexicon-free CTC beam search (loaded with ctypes).

Optional: where no C compiler is found the install goes on without it and `app.asr.fastbeam`
falls back to flashlight-text's decoder or the Python engine. Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("app.asr._ctcbeam", ["app/asr/_ctcbeam.c"], optional=True, extra_compile_args=["-O3"])])
