/* tests/fuzz/fuzz.h — what the fuzz targets share. */
#ifndef CLEDGER_TESTS_FUZZ_H
#define CLEDGER_TESTS_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

/* An invariant the target checks on its own (not a sanitizer finding): report it and abort, so
 * that libFuzzer and the replay driver both stop on it. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
