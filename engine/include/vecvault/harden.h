/*
 * harden.h - a process that holds a secret keeps it to itself.
 *
 * The vault daemon holds the vault's keys (hardened when it opens the
 * vault: vault.c); the vv:// client daemon holds the vault user's API key
 * or password for as long as it is mounted, to log in again after a
 * reconnect (net/client.c).  Either way: no core file, and no other
 * process of the same user reads its memory (/proc/PID/mem, ptrace)
 * without CAP_SYS_PTRACE.  Implemented by the crypto module (crypto.c).
 */
#ifndef VECVAULT_HARDEN_H
#define VECVAULT_HARDEN_H

/* Not dumpable (PR_SET_DUMPABLE 0), RLIMIT_CORE 0.  Inherited by a fork,
 * not by an exec.  0, or VV_ESYS (logged) when one of the two failed. */
int vv_crypto_harden_process(void);

#endif
