/* Placeholder entry point until the daemon lands. */
#include "core/log.h"

int
main(void)
{
    log_notice(LOG_FAC_MAIN, NULL, "catena: not yet");
    return 0;
}
