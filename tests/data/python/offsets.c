/* The offsets heaptrace reads CPython's structures at (heaptrace/stacks/python/layouts.py),
 * measured with offsetof() against one version's own internal headers: built with
 * -I<prefix>/include/python3.X by tests/unit/test_python_stacks.py, one line per PyLayout
 * field: "name value". Builds against 3.8 to 3.13. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "frameobject.h"
#if PY_VERSION_HEX >= 0x030b0000
#include "internal/pycore_frame.h"
#endif
#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
#else
#include "internal/pycore_pystate.h"
#endif

#define P(name, expr) printf("%s %zu\n", name, (size_t)(expr))

int main(void)
{
    P("runtime_size", sizeof(_PyRuntimeState));
    P("interpreters_head", offsetof(_PyRuntimeState, interpreters.head));
    P("tstate_next", offsetof(PyThreadState, next));
#if PY_VERSION_HEX >= 0x030b0000
    P("threads_head", offsetof(PyInterpreterState, threads.head));
    P("tstate_tid", offsetof(PyThreadState, native_thread_id));
    P("frame_previous", offsetof(_PyInterpreterFrame, previous));
    P("frame_globals", offsetof(_PyInterpreterFrame, f_globals));
    P("code_qualname", offsetof(PyCodeObject, co_qualname));
    P("code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
    P("code_firsttraceable", offsetof(PyCodeObject, _co_firsttraceable));
#else
    P("threads_head", offsetof(PyInterpreterState, tstate_head));
    P("tstate_tid", offsetof(PyThreadState, thread_id));
    P("tstate_frame", offsetof(PyThreadState, frame));
    P("frame_previous", offsetof(PyFrameObject, f_back));
    P("frame_globals", offsetof(PyFrameObject, f_globals));
    P("frame_code", offsetof(PyFrameObject, f_code));
    P("frame_instr", offsetof(PyFrameObject, f_lasti));
#endif
#if PY_VERSION_HEX >= 0x030d0000
    P("tstate_frame", offsetof(PyThreadState, current_frame));
    P("frame_code", offsetof(_PyInterpreterFrame, f_executable));
    P("frame_instr", offsetof(_PyInterpreterFrame, instr_ptr));
    P("frame_entry", offsetof(_PyInterpreterFrame, owner));
#elif PY_VERSION_HEX >= 0x030c0000
    P("tstate_frame", offsetof(PyThreadState, cframe));
    P("cframe_frame", offsetof(_PyCFrame, current_frame));
    P("frame_code", offsetof(_PyInterpreterFrame, f_code));
    P("frame_instr", offsetof(_PyInterpreterFrame, prev_instr));
    P("frame_entry", offsetof(_PyInterpreterFrame, owner));
#elif PY_VERSION_HEX >= 0x030b0000
    P("tstate_frame", offsetof(PyThreadState, cframe));
    P("cframe_frame", offsetof(_PyCFrame, current_frame));
    P("frame_code", offsetof(_PyInterpreterFrame, f_code));
    P("frame_instr", offsetof(_PyInterpreterFrame, prev_instr));
    P("frame_entry", offsetof(_PyInterpreterFrame, is_entry));
#endif
    P("code_filename", offsetof(PyCodeObject, co_filename));
    P("code_name", offsetof(PyCodeObject, co_name));
#if PY_VERSION_HEX >= 0x030a0000
    P("code_linetable", offsetof(PyCodeObject, co_linetable));
#else
    P("code_linetable", offsetof(PyCodeObject, co_lnotab));
#endif
    P("code_firstlineno", offsetof(PyCodeObject, co_firstlineno));
    P("ascii_size", sizeof(PyASCIIObject));
    P("compact_size", sizeof(PyCompactUnicodeObject));
    return 0;
}
