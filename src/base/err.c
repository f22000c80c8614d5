#include "base/err.h"

const char *cl_strerror(int err)
{
    switch (err) {
#define CL_ERR_MSG(name, value, msg)                                                               \
    case value:                                                                                    \
        return msg;
        CL_ERRORS(CL_ERR_MSG)
#undef CL_ERR_MSG
    }
    return "unknown error";
}

const char *cl_errname(int err)
{
    switch (err) {
#define CL_ERR_NAME(name, value, msg)                                                              \
    case value:                                                                                    \
        return #name;
        CL_ERRORS(CL_ERR_NAME)
#undef CL_ERR_NAME
    }
    return "CL_E?";
}
