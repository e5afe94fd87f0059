# Installs defenderbeat as the Windows service "defenderbeat". Run it from an elevated PowerShell
# in the folder the archive was unpacked to, for example C:\Program Files\defenderbeat:
#   PowerShell.exe -ExecutionPolicy UnRestricted -File .\install-service-defenderbeat.ps1
# The configuration is defenderbeat.yml in that folder; the cursors, the keystore and the logs
# live in %ProgramData%\defenderbeat, so that an upgrade into a new folder keeps them.
$ErrorActionPreference = "Stop"

$name = "defenderbeat"
$folder = Split-Path -Parent $MyInvocation.MyCommand.Path
$data = Join-Path $env:ProgramData $name

if (Get-Service -Name $name -ErrorAction SilentlyContinue) {
    # A reinstall replaces the service definition, never the data.
    Stop-Service -Name $name
    sc.exe delete $name | Out-Null
    while (Get-Service -Name $name -ErrorAction SilentlyContinue) { Start-Sleep -Milliseconds 250 }
}

New-Item -ItemType Directory -Force -Path $data | Out-Null

$binary = "`"$folder\defenderbeat.exe`" --environment=windows_service -c `"$folder\defenderbeat.yml`" " +
          "--path.home `"$folder`" --path.data `"$data`" --path.logs `"$data\logs`" " +
          "-E logging.files.redirect_stderr=true"
New-Service -Name $name -DisplayName $name -BinaryPathName $binary -StartupType Automatic `
    -Description "Ships Microsoft Defender XDR alerts, incidents and vulnerabilities to the Elastic Stack." | Out-Null

# Restart after a crash: 10 s each time, the failure count reset after a day.
sc.exe failure $name reset= 86400 actions= restart/10000/restart/10000/restart/10000 | Out-Null

Write-Output "Installed the service $name. Start it with: Start-Service $name"
