/*
 * core/sieve_settings.h - the configuration keys (sieve_*) turned into
 * the settings of the Sieve delivery chain (filters/sieve_exec.h), in one
 * place for the daemon and for toasterctl sieve-test, so both run a
 * script under the same limits, headers and periods.
 */
#ifndef TOASTER_CORE_SIEVE_SETTINGS_H
#define TOASTER_CORE_SIEVE_SETTINGS_H

#include "core/config.h"
#include "filters/sieve_exec.h"

/* settings_out from config; kv is the tracking store (NULL: private). */
static inline void
sieve_settings_from_config(const struct config *config, struct kv *kv,
                           struct sieve_exec_settings *settings_out)
{
    *settings_out = (struct sieve_exec_settings){
        .before = config->sieve_before,
        .after = config->sieve_after,
        .global_dir = config->sieve_global_dir,
        .max_script_size = config->sieve_max_script_size,
        .limits = {
            .steps_max = config->sieve_max_steps,
            .actions_max = config->sieve_max_actions,
            .redirects_max = config->sieve_max_redirects,
        },
        .env = {
            .spam_header = config->sieve_spamtest_status_header,
            .spam_max_score = (double)config->sieve_spamtest_max_value,
            .virus_header = config->sieve_virustest_status_header,
            .vacation_min_seconds = config->sieve_vacation_min_period_s,
            .vacation_default_seconds = config->sieve_vacation_default_period_s,
            .vacation_max_seconds = config->sieve_vacation_max_period_s,
            .duplicate_default_seconds = config->sieve_duplicate_default_period_s,
            .duplicate_max_seconds = config->sieve_duplicate_max_period_s,
        },
        .kv = kv,
        .redirect_duplicate_seconds = config->sieve_redirect_duplicate_period_s,
    };
}

#endif
