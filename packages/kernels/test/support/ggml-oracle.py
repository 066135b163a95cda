#!/usr/bin/env python3
"""ggml as an oracle for the kernel tests, through ctypes on node-llama-cpp's prebuilt libggml-base.

  ggml-oracle.py LIBDIR TYPE_ID COLS IN.f32 OUT.blocks OUT.deq.f32
Quantises the rows of IN.f32 (little-endian f32, rows of COLS values) with ggml_quantize_chunk (llama.cpp's own
quantiser, no importance matrix) into OUT.blocks, then dequantises those blocks with the type traits' to_float into
OUT.deq.f32. Exit status 3: the library is missing (the test then skips, saying so)."""
import ctypes, glob, os, sys

if len(sys.argv) != 7:
    sys.exit(__doc__)
libdir, type_id, cols, src, dst_blocks, dst_deq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:7]
found = sorted(glob.glob(os.path.join(libdir, 'libggml-base*.so')))
if not found:
    print(f'no libggml-base*.so in {libdir}', file=sys.stderr)
    sys.exit(3)
lib = ctypes.CDLL(found[0])

class Traits(ctypes.Structure):
    # struct ggml_type_traits (ggml.h): the fields up to to_float.
    _fields_ = [('type_name', ctypes.c_char_p), ('blck_size', ctypes.c_int64), ('blck_size_interleave', ctypes.c_int64),
                ('type_size', ctypes.c_size_t), ('is_quantized', ctypes.c_bool),
                ('to_float', ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64))]

lib.ggml_get_type_traits.restype = ctypes.POINTER(Traits)
lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
tr = lib.ggml_get_type_traits(type_id).contents
lib.ggml_quantize_chunk.restype = ctypes.c_size_t
lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                    ctypes.c_int64, ctypes.c_void_p]
lib.ggml_row_size.restype = ctypes.c_size_t
lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]

data = open(src, 'rb').read()
n = len(data) // 4
rows = n // cols
row_bytes = lib.ggml_row_size(type_id, cols)
x = ctypes.create_string_buffer(data, len(data))
q = ctypes.create_string_buffer(row_bytes * rows)
written = lib.ggml_quantize_chunk(type_id, x, q, 0, rows, cols, None)
if written != row_bytes * rows:
    sys.exit(f'ggml_quantize_chunk wrote {written} bytes, expected {row_bytes * rows} ({tr.type_name.decode()})')
y = ctypes.create_string_buffer(n * 4)
if tr.to_float:
    tr.to_float(ctypes.addressof(q), ctypes.addressof(y), n)
else:  # F32 has no to_float: its blocks are the values
    ctypes.memmove(y, q, n * 4)
open(dst_blocks, 'wb').write(q.raw)
open(dst_deq, 'wb').write(y.raw)
print(tr.type_name.decode(), tr.blck_size, tr.type_size)
