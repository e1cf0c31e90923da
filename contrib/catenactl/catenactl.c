/* catenactl: the admin CLI (placeholder). */
#include <stdio.h>

int
main(void)
{
    puts("catenactl");
    return 0;
}
