# Removes the Windows service "defenderbeat". The data in %ProgramData%\defenderbeat (cursors,
# keystore, logs) is kept: a later install resumes where this one stopped.
$ErrorActionPreference = "Stop"

$name = "defenderbeat"
if (Get-Service -Name $name -ErrorAction SilentlyContinue) {
    Stop-Service -Name $name
    sc.exe delete $name | Out-Null
    Write-Output "Removed the service $name."
} else {
    Write-Output "There is no service $name."
}
