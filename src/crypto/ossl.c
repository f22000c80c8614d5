#include "crypto/ossl.h"

#include <openssl/err.h>
#include <string.h>

#include "base/alloc.h"
#include "crypto/hash.h"

int cl_ossl_fail(int err)
{
    ERR_clear_error();
    return err;
}

int cl_ossl_bio_string(BIO *bio, int secret, char **out, size_t *len)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    CL_ENSURE(n > 0 && data != NULL, cl_ossl_fail(CL_ECRYPTO));
    char *s = secret ? cl_secret_alloc((size_t)n + 1) : cl_malloc((size_t)n + 1);
    CL_ENSURE(s != NULL, CL_ENOMEM);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    *out = s;
    *len = (size_t)n;
    return CL_OK;
}
