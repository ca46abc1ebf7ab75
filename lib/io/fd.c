/* [io] Descriptor and option helpers shared by every file that creates descriptors. */
#include "rill_private.h"

#include <fcntl.h>
#include <unistd.h>

int rill__set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return -errno;
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || (!(fl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0))
        return -errno;
    return 0;
}

int rill__check_reserved(void *const reserved[4])
{
    int i;
    for (i = 0; i < 4; i++)
        if (reserved[i] != NULL)
            return RILL_EINVAL;
    return 0;
}

const char *rill_version(void)
{
    return PACKAGE_VERSION;
}
