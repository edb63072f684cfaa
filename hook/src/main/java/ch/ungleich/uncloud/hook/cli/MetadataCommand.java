package ch.ungleich.uncloud.hook.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code uncloud-hook metadata show|set DOMAIN}: our metadata element, read or written with validation. */
@Command(
    name = "metadata",
    mixinStandardHelpOptions = true,
    description = {
      "Reads or writes a domain's uncloud-hook metadata (<uc:firewall> in namespace",
      "https://ungleich.ch/uncloud/hook/1, key uc)."
    },
    subcommands = {MetadataShowCommand.class, MetadataSetCommand.class, CommandLine.HelpCommand.class})
final class MetadataCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "missing subcommand: show or set");
  }
}
