package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.hook.source.EtcdValue;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code uncloud-hook etcd put DOMAIN [--file F]}. */
@Command(
    name = "put",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Writes the domain's etcd key: the value in FILE, else the domain's own metadata (live for a",
      "running domain, else persistent) in the per-NIC form. Validated first: nothing is written",
      "that the hook would refuse."
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
      "0:written",
      "1:invalid value or metadata, or the domain has none; nothing written",
      "2:wrong command line",
      "3:libvirt could not be asked, or no such domain",
      "5:no etcd endpoint answered; nothing written"
    })
final class EtcdPutCommand implements Callable<Integer> {
  @Mixin CommonOptions common;

  @Parameters(index = "0", paramLabel = "DOMAIN", description = "Name or UUID.")
  String domain;

  @Option(names = "--file", paramLabel = "FILE", description = "The value (JSON, either form); - for stdin.")
  String file;

  @Spec CommandSpec spec;

  /** The {@code --json} shape: what was written, and etcd's revision after it. */
  record Result(String domain, String uuid, String key, String value, List<EtcdCommand.Nic> interfaces, long revision) {}

  @Override
  public Integer call() {
    Config cfg = common.loadConfig();
    Domain d = EtcdCommand.domain(common.uri(), domain);
    String key = AddressSource.key(d, cfg);
    String value;
    if (file != null) {
      try {
        value = file.equals("-") ? new String(System.in.readAllBytes(), StandardCharsets.UTF_8) : Files.readString(Path.of(file));
      } catch (IOException e) {
        throw UncloudException.invalid("cannot read " + file + ": " + e.getMessage());
      }
    } else if (d.metadata == null || d.metadata.firewall == null) {
      throw UncloudException.invalid(d.name + ": has no uncloud-hook metadata to put; give --file");
    } else {
      value = EtcdValue.render(d.metadata.firewall);
    }
    List<EtcdCommand.Nic> nics = EtcdCommand.validate(value, d, key, cfg);
    long rev = EtcdCommand.client(cfg).put(key, value);
    PrintWriter out = spec.commandLine().getOut();
    if (common.json()) {
      Json.print(out, new Result(d.name, d.uuid, key, value, nics, rev));
    } else {
      out.println("put " + key + " (revision " + rev + "): " + value.strip());
      out.flush();
    }
    return ExitCodes.OK;
  }
}
