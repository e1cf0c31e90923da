/*
 * catenactl's subcommand families, one file each; catenactl.c dispatches.
 * Each returns the process exit status: 0 ok, 1 failure, 2 usage error.
 */
#ifndef CATENA_CONTRIB_CATENACTL_CTL_H
#define CATENA_CONTRIB_CATENACTL_CTL_H

/** catenactl bundle ... (bundle.c): argv[0] is the subcommand. */
int ctl_bundle(int argc, char **argv);

/** catenactl policy ... (policy.c): argv[0] is the subcommand. */
int ctl_policy(int argc, char **argv);

/**
 * Compiles the policy file as a node would (with the categories file, if
 * not NULL); on failure prints the error (file:line:column: what was
 * expected) to stderr. Returns 0 when it compiles.
 */
int ctl_policy_compiles(const char *policy_path, const char *cats_path);

#endif
