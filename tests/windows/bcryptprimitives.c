/*
 * A stand-in for Windows' bcryptprimitives.dll, for running the Windows
 * build under Wine 8, which lacks ProcessPrng. Rust's standard library calls
 * ProcessPrng for its random seeds on Windows 10 and later; this forwards it
 * to RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 * Built by run.sh and placed beside wasmproc.exe; real Windows never uses it.
 */
#include <windows.h>

BOOLEAN NTAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
