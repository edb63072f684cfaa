package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.agent.Agent;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code uncloud-hook agent}: the long-running daemon that keeps the rules right between hook calls. */
@Command(
    name = "agent",
    mixinStandardHelpOptions = true,
    description = {
      "Runs in the foreground until stopped (SIGTERM): keeps the host's rules what the running domains'",
      "metadata demands between hook calls. Acts on libvirt's events (NIC hot-plug and unplug, live",
      "metadata changes, domains started and stopped) and on removals from its nft table (nft flush",
      "ruleset, a deleted chain or element), each within a second; with backend = nwfilter it writes the",
      "live filterrefs and drops a VM tap while libvirt's rules for it are not complete. Compares the whole host",
      "every agent_resync seconds as a backstop; reconnects when libvirtd restarts. One log line per",
      "action on stderr and in log_file; state_dir/agent.json for doctor and status."
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {"1:invalid configuration", "3:nft or libvirt's client library unusable"})
final class AgentCommand implements Callable<Integer> {
  /** --connect, --config-file, --debug (--json does not apply: the agent prints log lines). */
  @Mixin CommonOptions common;

  @Override
  public Integer call() {
    new Agent(common.loadConfig(), common.uri(), System.err).run();
    return ExitCodes.OK;
  }
}
