/* catena's version, shown by -V, /status and the Server header of local pages. */
#ifndef CATENA_CORE_VERSION_H
#define CATENA_CORE_VERSION_H

#define CATENA_VERSION "0.2.0"

#endif
