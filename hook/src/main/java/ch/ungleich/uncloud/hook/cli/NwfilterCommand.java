package ch.ungleich.uncloud.hook.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code uncloud-hook nwfilter …}: the libvirt nwfilter definitions of the nwfilter backend. */
@Command(
    name = "nwfilter",
    mixinStandardHelpOptions = true,
    description = "Manage the uncloud-* libvirt nwfilters used by backend = nwfilter.",
    subcommands = {NwfilterInstallCommand.class})
final class NwfilterCommand implements Runnable {
  @Spec CommandSpec spec;

  @Override
  public void run() {
    throw new ParameterException(spec.commandLine(), "missing subcommand: install");
  }
}
